"""QLoRA training (:mod:`trainer.training`) and evaluation (:mod:`trainer.evaluation`) over
published dataset versions, behind the ``qlora-trainer`` command (:mod:`trainer.cli`)."""

__version__ = "0.1.0"

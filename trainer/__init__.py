"""QLoRA trainer and perplexity evaluator over published dataset versions."""

__version__ = "0.1.0"

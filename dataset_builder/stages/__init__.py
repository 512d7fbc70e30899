"""Stage lookup by the ``type`` a recipe names.

Stages are referenced by import path and imported only when a recipe names them, so a stage with
heavy dependencies (translation) costs nothing to recipes that do not use it.
"""

from __future__ import annotations

import importlib

from dataset_builder.stages.base import Reject, RowStage, Stage, StageConfig, StageContext, StageStats

STAGES: dict[str, str] = {
    "normalize": "dataset_builder.stages.normalize:Normalize",
    "quality": "dataset_builder.stages.quality:QualityFilter",
    "exact_dedup": "dataset_builder.stages.exact_dedup:ExactDedup",
    "near_dedup": "dataset_builder.stages.near_dedup:NearDedup",
    "decontaminate": "dataset_builder.stages.decontaminate:Decontaminate",
    "translate": "dataset_builder.stages.translate:Translate",
    "mt_quality": "dataset_builder.stages.mt_quality:MtQuality",
    "replay": "dataset_builder.stages.replay:Replay",
    "split": "dataset_builder.stages.split:Split",
    "format": "dataset_builder.stages.format:Format",
}

__all__ = [
    "STAGES",
    "Reject",
    "RowStage",
    "Stage",
    "StageConfig",
    "StageContext",
    "StageStats",
    "stage_class",
    "stage_config_model",
]


def stage_class(type_name: str) -> type[Stage]:
    try:
        target = STAGES[type_name]
    except KeyError:
        known = ", ".join(sorted(STAGES))
        raise KeyError(f"unknown stage type {type_name!r} (known: {known})") from None
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def stage_config_model(type_name: str) -> type[StageConfig]:
    return stage_class(type_name).Config

"""The translation engine's recipe settings, shared by every stage that runs it (translate, and the
round trip of mt_quality), so both choose, decode and run the engine from one definition."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from dataset_builder.stages.base import StageConfig


class EngineSettings(StageConfig):
    # "argos" (an installed Argos package), or "python:MODULE:FUNCTION": a translator of the
    # user's own (dataset_builder.translation.python_engine), run only when the user allows it.
    engine: str = "argos"
    # Each stage sets its own direction's defaults.
    from_lang: str
    to_lang: str
    package_version: str | None = None
    packages_dir: str | None = None
    # "skip": without a package the stage does without its engine, and the build says so.
    if_missing: Literal["error", "skip"] = "error"
    # decoding (defaults: argostranslate's)
    beam_size: int = Field(default=4, ge=1, le=16)
    length_penalty: float = 0.2
    max_decoding_length: int = Field(default=256, ge=8)
    # runtime
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = "auto"
    inter_threads: int = Field(default=0, ge=0)
    intra_threads: int = Field(default=0, ge=0)
    batch_tokens: int = Field(default=2048, ge=64)
    chunk_sentences: int = Field(default=512, ge=1)
    cache: bool = True
    cache_path: str | None = None

    @field_validator("engine")
    @classmethod
    def _engine_name(cls, engine: str) -> str:
        from dataset_builder.translation.python_engine import check_spec

        return check_spec(engine)

"""The translation engine's recipe settings, shared by every stage that runs it (translate, and the
round trip of mt_quality), so both decode and run the engine from one definition."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dataset_builder.stages.base import StageConfig


class EngineSettings(StageConfig):
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

"""Row quality filters: a row must have a question and an answer of sensible length."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from dataset_builder.stages.base import Reject, RowStage, StageConfig, StageContext
from dataset_builder.stages.turn_columns import Turns


class QualityConfig(StageConfig):
    min_prompt_chars: int = Field(default=1, ge=0)
    max_prompt_chars: int = Field(default=20_000, ge=1)
    min_answer_chars: int = Field(default=1, ge=0)
    max_answer_chars: int = Field(default=40_000, ge=1)
    max_turns: int = Field(default=64, ge=2)
    require_assistant_last: bool = True


class QualityFilter(RowStage):
    name = "quality"
    Config = QualityConfig

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        for batch in batches:
            turns = Turns.of(batch.column("messages")) if batch.num_rows else None
            if turns is None:
                yield from super().run(iter([batch]), ctx)
                continue
            keep = self._passes(turns)
            failing = np.flatnonzero(~keep)
            # Rows that do not pass go through process(), which names the reason; it returns a row
            # unchanged when it keeps it.
            for i, row in zip(failing, batch.take(pa.array(failing, pa.int64())).to_pylist(), strict=True):
                try:
                    self.process(row, ctx)
                    keep[i] = True
                except Reject as why:
                    ctx.reject([row], why.reason, why.detail)
            if keep.all():
                yield batch
            elif keep.any():
                yield batch.filter(pa.array(keep, pa.bool_()))

    def _passes(self, turns: Turns) -> np.ndarray:
        """Rows that pass every check of process(), computed on the batch's turns at once."""
        cfg: QualityConfig = self.config
        rows = len(turns.counts)
        row_of = turns.row_of
        is_user = pc.equal(turns.roles, "user").to_numpy(zero_copy_only=False)
        is_answer = pc.equal(turns.roles, "assistant").to_numpy(zero_copy_only=False)
        chars = pc.utf8_length(turns.contents).to_numpy(zero_copy_only=False).astype(np.int64)
        users = np.bincount(row_of[is_user], minlength=rows)
        answers = np.bincount(row_of[is_answer], minlength=rows)
        prompt_chars = np.bincount(row_of[is_user], weights=chars[is_user], minlength=rows)
        answer_chars = np.bincount(row_of[is_answer], weights=chars[is_answer], minlength=rows)
        ok = (users > 0) & (answers > 0) & (turns.counts <= cfg.max_turns)
        ok &= (prompt_chars >= cfg.min_prompt_chars) & (prompt_chars <= cfg.max_prompt_chars)
        ok &= (answer_chars >= cfg.min_answer_chars) & (answer_chars <= cfg.max_answer_chars)
        if cfg.require_assistant_last:
            answered = np.zeros(rows, dtype=bool)
            has_turns = turns.counts > 0
            answered[has_turns] = is_answer[turns.starts[1:][has_turns] - 1]
            ok &= answered
        return ok

    def process(self, row: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
        cfg: QualityConfig = self.config
        messages = row["messages"]
        users = [m["content"] for m in messages if m["role"] == "user"]
        answers = [m["content"] for m in messages if m["role"] == "assistant"]
        if not users:
            raise Reject("empty_prompt", "no user turn")
        if not answers:
            raise Reject("empty_answer", "no assistant turn")
        if cfg.require_assistant_last and messages[-1]["role"] != "assistant":
            raise Reject("unanswered_last_turn", f"last turn is {messages[-1]['role']}")
        if len(messages) > cfg.max_turns:
            raise Reject("too_many_turns", f"{len(messages)} turns > {cfg.max_turns}")
        prompt_chars = sum(len(u) for u in users)
        answer_chars = sum(len(a) for a in answers)
        if prompt_chars < cfg.min_prompt_chars:
            raise Reject("prompt_too_short", f"{prompt_chars} chars < {cfg.min_prompt_chars}")
        if prompt_chars > cfg.max_prompt_chars:
            raise Reject("prompt_too_long", f"{prompt_chars} chars > {cfg.max_prompt_chars}")
        if answer_chars < cfg.min_answer_chars:
            raise Reject("answer_too_short", f"{answer_chars} chars < {cfg.min_answer_chars}")
        if answer_chars > cfg.max_answer_chars:
            raise Reject("answer_too_long", f"{answer_chars} chars > {cfg.max_answer_chars}")
        return row

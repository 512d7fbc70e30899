"""Row quality filters: a row must have a question and an answer of sensible length."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from dataset_builder.stages.base import Reject, RowStage, StageConfig, StageContext


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

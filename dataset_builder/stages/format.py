"""Render each conversation as training text beside its ``messages``.

Adds ``text`` (the whole conversation in the chat format), and ``prompt`` / ``completion`` (the
text split after the last assistant header) for completion-only loss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from dataset_builder.chat.templates import BUILTIN_FORMATS, ChatFormat
from dataset_builder.rows import ROLES
from dataset_builder.stages.base import Reject, RowStage, StageConfig, StageContext, pylist_roundtrip
from dataset_builder.stages.turn_columns import Turns


class FormatConfig(StageConfig):
    template: Literal["zephyr", "chatml", "alpaca", "jinja"] = "zephyr"
    # Only for template = "jinja": a transformers-style chat template and its special tokens.
    jinja: str | None = None
    bos_token: str = "<s>"
    eos_token: str = "</s>"
    # keep: system turns as they come; none: drop them; empty: one empty system turn first (as the
    # zephyr-python-ru model card shows); fixed: ``system_prompt`` as the only system turn.
    system: Literal["keep", "none", "empty", "fixed"] = "keep"
    system_prompt: str = ""
    # Token counts with the model's real tokenizer ("zephyr": zephyr-7b-beta's, built offline from
    # mistral-common; or a local tokenizer folder): adds ``num_tokens``; rows over ``max_tokens``
    # are rejected.
    tokenizer: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> FormatConfig:
        if self.template == "jinja" and not self.jinja:
            raise ValueError("template = 'jinja' needs a 'jinja' template string")
        if self.system == "fixed" and not self.system_prompt:
            raise ValueError("system = 'fixed' needs a 'system_prompt'")
        if self.max_tokens is not None and self.tokenizer is None:
            raise ValueError("max_tokens needs a 'tokenizer' to count with")
        return self


class Format(RowStage):
    name = "format"
    Config = FormatConfig

    def __init__(self, config: FormatConfig | None = None) -> None:
        super().__init__(config)
        cfg: FormatConfig = self.config
        if cfg.template == "jinja":
            self.chat = ChatFormat("jinja", cfg.jinja or "", cfg.bos_token, cfg.eos_token)
        else:
            self.chat = BUILTIN_FORMATS[cfg.template]
        # A built-in template renders each turn on its own, so its text is built here without
        # Jinja; a recipe's own template is rendered by Jinja (twice: text, then prompt).
        self.turns = TURN_RENDERERS.get(cfg.template)
        self.pieces = _turn_pieces(self.turns, self.chat.eos_token) if self.turns else None

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        cfg: FormatConfig = self.config
        if cfg.tokenizer is None:
            yield from self._formatted(batches, ctx)
            return
        from dataset_builder.chat.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(cfg.tokenizer)
        ctx.stats.counters["tokenizer"] = cfg.tokenizer
        for batch in self._formatted(batches, ctx):
            # The text already holds the template's special tokens: only BOS is added, as in training.
            counts = [len(ids) for ids in tokenizer(batch.column("text").to_pylist()).input_ids]
            batch = batch.append_column("num_tokens", pa.array(counts, pa.int32()))
            if cfg.max_tokens is None:
                yield batch
                continue
            keep = [n <= cfg.max_tokens for n in counts]
            over = [i for i, ok in enumerate(keep) if not ok]
            if over:
                rows = batch.take(over).to_pylist()
                ctx.reject(
                    rows,
                    "too_many_tokens",
                    [f"{r['num_tokens']} tokens > max_tokens {cfg.max_tokens}" for r in rows],
                )
            if any(keep):
                yield batch.filter(pa.array(keep))

    def _formatted(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        """Each batch with its text, prompt and completion: a built-in template's over the whole
        batch at once, else (a recipe's own template, a batch the column path does not take) row
        by row through process()."""
        for batch in batches:
            formatted = self._format_columns(batch) if batch.num_rows else None
            if formatted is None:
                yield from super().run(iter([batch]), ctx)
            else:
                yield formatted

    def _format_columns(self, batch: pa.Table) -> pa.Table | None:
        """What process() makes of every row of ``batch``, built on its columns of turns; None when
        this batch is for process(): a recipe's own template, a null or a role outside system,
        user and assistant, or columns whose types a row-by-row batch would not keep."""
        if self.pieces is None:
            return None
        turns = Turns.of(batch.column("messages"))
        if turns is None or not pc.all(pc.is_in(turns.roles, pa.array(ROLES))).as_py():
            return None
        turns = self._with_system_turns(turns)
        before, after, header, after_a_turn_only = self.pieces
        role = pc.index_in(turns.roles, pa.array(ROLES))
        pieces = pc.binary_join_element_wise(
            pa.array(before).take(role), turns.contents, pa.array(after).take(role), ""
        )
        starts = turns.starts
        # Rows ending with an assistant turn: the prompt is every piece but that turn's, then the
        # generation header (zephyr writes it only after a turn); the completion is the rest of the
        # turn (the whole turn where no header was written). Other rows: all text is prompt.
        answered = np.zeros(len(turns.counts), dtype=bool)
        has_turns = turns.counts > 0
        last = starts[1:] - 1
        is_answer = pc.equal(turns.roles, "assistant").to_numpy(zero_copy_only=False)
        answered[has_turns] = is_answer[last[has_turns]]
        written = pa.array(answered & ((turns.counts > 1) | (not after_a_turn_only)))
        drop_last = np.zeros(len(pieces), dtype=bool)
        drop_last[last[answered]] = True
        head = pc.binary_join(
            pa.ListArray.from_arrays(
                pa.array(starts, pa.int32()), pc.if_else(pa.array(drop_last), "", pieces)
            ),
            "",
        )
        prompt = pc.if_else(written, pc.binary_join_element_wise(head, header, ""), head)
        if len(pieces):
            # The answer's piece is the header, its content and what follows it.
            at_last = pa.array(np.where(answered, last, 0), pa.int64())
            tail = pc.binary_join_element_wise(
                pc.if_else(written, "", header),
                turns.contents.take(at_last),
                after[ROLES.index("assistant")],
                "",
            )
            completion = pc.if_else(pa.array(answered), tail, "")
        else:
            completion = pa.array([""] * len(turns.counts), pa.string())
        text = pc.binary_join_element_wise(prompt, completion, "")
        columns = {"messages": turns.column(), "text": text, "prompt": prompt, "completion": completion}
        out = batch
        for name, values in columns.items():
            where = out.schema.get_field_index(name)
            out = out.append_column(name, values) if where < 0 else out.set_column(where, name, values)
        # process() gives rows as dicts: a batch of new columns is typed as Arrow infers them from
        # Python values, one whose columns are all known keeps its schema.
        same_columns = set(out.schema.names) == set(batch.schema.names)
        return pylist_roundtrip(out, batch.schema if same_columns else None)

    def _with_system_turns(self, turns: Turns) -> Turns:
        """``_with_system_policy`` over a batch's turns."""
        cfg: FormatConfig = self.config
        if cfg.system == "keep":
            return turns
        rest = turns.keep(pc.not_equal(turns.roles, "system").to_numpy(zero_copy_only=False))
        if cfg.system == "none":
            return rest
        return rest.with_first("system", "" if cfg.system == "empty" else cfg.system_prompt)

    def _with_system_policy(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        cfg: FormatConfig = self.config
        if cfg.system == "keep":
            return messages
        rest = [m for m in messages if m["role"] != "system"]
        if cfg.system == "none":
            return rest
        prompt = "" if cfg.system == "empty" else cfg.system_prompt
        return [{"role": "system", "content": prompt}, *rest]

    def process(self, row: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
        messages = self._with_system_policy(row["messages"])
        try:
            if self.turns is not None:
                text, prompt, completion = self._split(messages)
            else:
                text, prompt, completion = self.chat.prompt_completion(messages)
        except Exception as exc:  # a user-supplied template can fail on a row: reject, don't crash
            raise Reject(
                "template_error", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            ) from None
        row["messages"] = messages
        row["text"] = text
        row["prompt"] = prompt
        row["completion"] = completion
        return row

    def _split(self, messages: list[dict[str, str]]) -> tuple[str, str, str]:
        """``chat.prompt_completion`` for a built-in template: the text is the turns' pieces, the
        prompt every piece but the last one's plus the generation header."""
        assert self.turns is not None
        render, header, after_a_turn_only = self.turns
        eos = self.chat.eos_token
        pieces = [render(m["role"], m["content"], eos) for m in messages]
        text = "".join(pieces)
        if not messages or messages[-1]["role"] != "assistant":
            return text, text, ""
        written = len(messages) > 1 or not after_a_turn_only
        prompt = "".join(pieces[:-1]) + (header if written else "")
        if not text.startswith(prompt):
            raise ValueError(
                f"template {self.chat.name!r} does not render the prompt as a prefix of the text"
            )
        return text, prompt, text[len(prompt) :]


def _zephyr_turn(role: str, content: str, eos: str) -> str:
    return f"<|{role}|>\n{content}{eos}\n" if role in ("user", "system", "assistant") else ""


def _chatml_turn(role: str, content: str, eos: str) -> str:
    return f"<|im_start|>{role}\n{content}<|im_end|>\n"


def _alpaca_turn(role: str, content: str, eos: str) -> str:
    if role == "system":
        return f"{content}\n\n"
    if role == "user":
        return f"### Instruction:\n{content}\n\n"
    if role == "assistant":
        return f"### Response:\n{content}{eos}\n\n"
    return ""


def _turn_pieces(
    turns: tuple[Callable[[str, str, str], str], str, bool], eos: str
) -> tuple[list[str], list[str], str, bool] | None:
    """A turn renderer as what it writes before and after the content of each role in ROLES, the
    generation header, and whether the header is written only after a turn; None when a renderer
    does not write the content exactly once, or writes the assistant's turn without the header in
    front (the column path builds completions on both)."""
    render, header, after_a_turn_only = turns
    marker = "\x00content\x00"
    before, after = [], []
    for role in ROLES:
        written = render(role, marker, eos)
        if written.count(marker) != 1:
            return None
        head, _, tail = written.partition(marker)
        before.append(head)
        after.append(tail)
    if before[ROLES.index("assistant")] != header:
        return None
    return before, after, header, after_a_turn_only


# The built-in templates of chat.templates, turn by turn: (one turn's text, the generation header,
# whether the header is written only after a turn: zephyr's sits inside its loop, on
# ``loop.last``). tests/test_format.py renders the same rows with the Jinja templates and compares.
TURN_RENDERERS: dict[str, tuple[Callable[[str, str, str], str], str, bool]] = {
    "zephyr": (_zephyr_turn, "<|assistant|>\n", True),
    "chatml": (_chatml_turn, "<|im_start|>assistant\n", False),
    "alpaca": (_alpaca_turn, "### Response:\n", False),
}

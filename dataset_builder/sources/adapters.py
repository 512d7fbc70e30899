"""Source adapters: one source schema in, canonical ``messages`` out.

Each adapter names the logical columns it reads (with defaults a recipe may remap through
``columns``) and turns one record into turns. A record it cannot use raises :class:`RowProblem`,
which the loader turns into a rejected row with the reason and the offending key.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from dataset_builder.rows import CANONICAL_SCHEMA, ROLES, Message


class RowProblem(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


@dataclass(frozen=True)
class Adapter(ABC):
    name: str
    # logical name -> default column names tried in order (the first present one is used)
    required: dict[str, tuple[str, ...]]
    optional: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Logical columns published as string columns of their own beside the canonical ones.
    extra: tuple[str, ...] = ()

    def schema(self) -> pa.Schema:
        return pa.schema([*CANONICAL_SCHEMA, *(pa.field(name, pa.string()) for name in self.extra)])

    def extra_values(self, record: Mapping[str, Any], columns: dict[str, tuple[str, ...]]) -> dict[str, str]:
        return {name: _text(record, columns[name], required=name in self.required) for name in self.extra}

    def resolve_columns(self, mapping: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
        unknown = set(mapping) - set(self.required) - set(self.optional)
        if unknown:
            known = ", ".join(sorted({*self.required, *self.optional}))
            raise ValueError(f"adapter {self.name!r} has no column {sorted(unknown)[0]!r} (known: {known})")
        out = {}
        for logical, defaults in {**self.required, **self.optional}.items():
            out[logical] = (mapping[logical],) if logical in mapping else defaults
        return out

    def missing_required(self, columns: dict[str, tuple[str, ...]], present: set[str]) -> str | None:
        """The first required column absent from ``present`` (a file's columns), or None."""
        for logical in self.required:
            if not any(c in present for c in columns[logical]):
                return " or ".join(repr(c) for c in columns[logical])
        return None

    @abstractmethod
    def to_messages(self, record: Mapping[str, Any], columns: dict[str, tuple[str, ...]]) -> list[Message]:
        """One record's turns; raise :class:`RowProblem` for a record this adapter cannot use."""


def _pick(record: Mapping[str, Any], names: tuple[str, ...], *, required: bool) -> Any:
    for name in names:
        if name in record:
            return name, record[name]
    if required:
        raise RowProblem("missing_column", f"key {' or '.join(repr(n) for n in names)} is missing")
    return None, None


def _text(record: Mapping[str, Any], names: tuple[str, ...], *, required: bool = True) -> str:
    key, value = _pick(record, names, required=required)
    if value is None:
        if required:
            raise RowProblem("missing_value", f"key {key!r} is null")
        return ""
    if not isinstance(value, str):
        raise RowProblem("non_string_field", f"key {key!r} is {_type_name(value)}, expected string")
    return value


class AlpacaAdapter(Adapter):
    """``instruction`` (+ optional ``input``) -> user, ``output`` (CodeAlpaca: ``response``) -> assistant."""

    def to_messages(self, record: Mapping[str, Any], columns: dict[str, tuple[str, ...]]) -> list[Message]:
        instruction = _text(record, columns["instruction"])
        extra = _text(record, columns["input"], required=False)
        output = _text(record, columns["output"])
        user = f"{instruction}\n{extra}" if extra.strip() else instruction
        return [{"role": "user", "content": user}, {"role": "assistant", "content": output}]


class QAAdapter(Adapter):
    def to_messages(self, record: Mapping[str, Any], columns: dict[str, tuple[str, ...]]) -> list[Message]:
        return [
            {"role": "user", "content": _text(record, columns["question"])},
            {"role": "assistant", "content": _text(record, columns["answer"])},
        ]


class PromptCompletionAdapter(Adapter):
    def to_messages(self, record: Mapping[str, Any], columns: dict[str, tuple[str, ...]]) -> list[Message]:
        return [
            {"role": "user", "content": _text(record, columns["prompt"])},
            {"role": "assistant", "content": _text(record, columns["completion"])},
        ]


_ROLE_ALIASES = {
    "human": "user",
    "user": "user",
    "bot": "assistant",
    "assistant": "assistant",
    "gpt": "assistant",
    "system": "system",
}


def _turns(
    record: Mapping[str, Any], names: tuple[str, ...], role_key: str, content_key: str
) -> list[Message]:
    key, turns = _pick(record, names, required=True)
    if not isinstance(turns, list):
        raise RowProblem("non_list_field", f"key {key!r} is {_type_name(turns)}, expected a list of turns")
    messages: list[Message] = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, Mapping):
            raise RowProblem("bad_turn", f"{key}[{i}] is {_type_name(turn)}, expected an object")
        role = _ROLE_ALIASES.get(str(turn.get(role_key, "")).lower())
        if role not in ROLES:
            raise RowProblem("bad_role", f"{key}[{i}].{role_key} = {turn.get(role_key)!r}")
        content = turn.get(content_key)
        if not isinstance(content, str):
            raise RowProblem(
                "non_string_field", f"{key}[{i}].{content_key} is {_type_name(content)}, expected string"
            )
        messages.append({"role": role, "content": content})
    return messages


class ChatRoundsAdapter(Adapter):
    """CodeExercise's ``chat_rounds``: ``[{role: human|bot, content, chat_round_id}]``."""

    def to_messages(self, record: Mapping[str, Any], columns: dict[str, tuple[str, ...]]) -> list[Message]:
        return _turns(record, columns["chat_rounds"], "role", "content")


class MessagesAdapter(Adapter):
    def to_messages(self, record: Mapping[str, Any], columns: dict[str, tuple[str, ...]]) -> list[Message]:
        return _turns(record, columns["messages"], "role", "content")


class HumanEvalAdapter(Adapter):
    """HumanEval's schema: ``prompt`` (signature and docstring) -> user, ``canonical_solution`` ->
    assistant; ``task_id``, ``test`` and ``entry_point`` stay columns, so the version can be run
    as an evaluation set."""

    def to_messages(self, record: Mapping[str, Any], columns: dict[str, tuple[str, ...]]) -> list[Message]:
        return [
            {"role": "user", "content": _text(record, columns["prompt"])},
            {"role": "assistant", "content": _text(record, columns["canonical_solution"])},
        ]


ADAPTERS: dict[str, Adapter] = {
    "alpaca": AlpacaAdapter(
        "alpaca",
        required={"instruction": ("instruction",), "output": ("output", "response")},
        optional={"input": ("input",)},
        # The task's input stays a column of its own: it is the data the instruction works on, and
        # a stage that must not change data (translate) finds it at the end of the user turn.
        extra=("input",),
    ),
    "qa": QAAdapter("qa", required={"question": ("question",), "answer": ("answer",)}),
    "prompt_completion": PromptCompletionAdapter(
        "prompt_completion", required={"prompt": ("prompt",), "completion": ("completion",)}
    ),
    "chat_rounds": ChatRoundsAdapter("chat_rounds", required={"chat_rounds": ("chat_rounds",)}),
    "messages": MessagesAdapter("messages", required={"messages": ("messages",)}),
    "humaneval": HumanEvalAdapter(
        "humaneval",
        required={
            name: (name,) for name in ("task_id", "prompt", "canonical_solution", "test", "entry_point")
        },
        extra=("task_id", "test", "entry_point"),
    ),
}

"""The canonical row: what every source adapter produces and every stage consumes.

A row is ``messages`` (a list of ``{role, content}`` turns, roles system/user/assistant) plus
provenance: the recipe's ``source`` name, ``source_key`` (where the row lives in its source:
``file:line`` or ``split[index]``), ``row_id`` (a stable hash of source and content) and ``lang``
(the language the text is in, as declared by the source or set by a translating stage).
A translating stage adds ``source_messages`` (the turns before translation) and ``source_lang``.
Stages may add columns (``split``, ``text``, ``dup_cluster``...); they never remove these.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from json.encoder import encode_basestring
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROLES = ("system", "user", "assistant")
Role = Literal["system", "user", "assistant"]

MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES_TYPE = pa.list_(MESSAGE_TYPE)

CANONICAL_SCHEMA = pa.schema(
    [
        ("row_id", pa.string()),
        ("source", pa.string()),
        ("source_key", pa.string()),
        ("lang", pa.string()),
        ("messages", MESSAGES_TYPE),
    ]
)

REJECTED_SCHEMA = pa.schema(
    [
        ("row_id", pa.string()),
        ("source", pa.string()),
        ("source_key", pa.string()),
        ("stage", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        # For duplicates: the row id of the row that was kept in this one's place.
        ("duplicate_of", pa.string()),
        ("messages", MESSAGES_TYPE),
        # The original record as JSON, for rows rejected before they could become messages.
        ("raw", pa.string()),
        # What a transforming stage made of the row before rejecting it (a translation that
        # failed its checks), beside ``messages``, the row as it came in.
        ("attempted_messages", MESSAGES_TYPE),
    ]
)

Message = dict[str, str]


def canonical_json(value: Any) -> str:
    """A byte-stable JSON rendering (sorted keys, no whitespace, UTF-8 kept)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def content_key(messages: Sequence[Message]) -> str:
    """One string that identifies the content of a conversation, for hashing: the canonical JSON
    of ``[[role, content], ...]``, written here string by string (what ``json.dumps`` writes for
    strings, without its per-call set-up, which costs more than the escaping on short turns)."""
    try:
        return (
            "["
            + ",".join([f"[{json_string(m['role'])},{json_string(m['content'])}]" for m in messages])
            + "]"
        )
    except TypeError:  # a role or content that is not a string: json.dumps says what it makes of it
        return canonical_json([[m["role"], m["content"]] for m in messages])


def content_keys(messages: pa.Array | pa.ChunkedArray, roles: tuple[str, ...] | None = None) -> list[str]:
    """``content_key`` of every row of a ``messages`` column (of only its turns whose role is in
    ``roles``, when given), read column by column instead of as a dict per turn."""
    array = messages.combine_chunks() if isinstance(messages, pa.ChunkedArray) else messages
    items = array.flatten() if array.null_count == 0 else None
    if (
        items is None
        or {(field.name, field.type) for field in items.type}
        != {("role", pa.string()), ("content", pa.string())}
        or items.type.num_fields != 2
        or items.null_count
        or items.field("role").null_count
        or items.field("content").null_count
    ):
        rows = array.to_pylist()
        return [content_key([m for m in row if roles is None or m["role"] in roles]) for row in rows]
    role_values = items.field("role").to_pylist()
    turns = [
        None if roles is not None and role not in roles else f"[{json_string(role)},{json_string(content)}]"
        for role, content in zip(role_values, items.field("content").to_pylist(), strict=True)
    ]
    out = []
    start = 0
    for n in pc.list_value_length(array).to_pylist():
        chosen = turns[start : start + n]
        start += n
        out.append(
            "[" + ",".join([t for t in chosen if t is not None] if roles is not None else chosen) + "]"
        )
    return out


# What json.dumps(..., ensure_ascii=False) writes for a str (the same C function it calls).
json_string = encode_basestring


def make_row_id(source: str, messages: Sequence[Message]) -> str:
    """Stable id: the same source and content always give the same id, on any machine."""
    digest = hashlib.sha256()
    digest.update(source.encode("utf-8"))
    digest.update(b"\x00")
    digest.update(content_key(messages).encode("utf-8"))
    return digest.hexdigest()[:32]


def row_ids(source: str, messages: pa.Array) -> list[str]:
    """``make_row_id(source, row)`` for every row of a ``messages`` array without nulls: the
    ``[[role, content], ...]`` JSON of all rows written by polars (as ``canonical_json`` writes it),
    only the hashing done row by row."""
    import polars as pl

    items = messages.flatten()
    turns = len(items)
    # Each turn as the list [role, content]: roles and contents taken alternately.
    order = np.empty(2 * turns, dtype=np.int64)
    order[0::2] = np.arange(turns)
    order[1::2] = np.arange(turns) + turns
    both = pa.concat_arrays([items.field("role"), items.field("content")]).take(pa.array(order))
    pairs = pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * turns + 1, 2), pa.int32()), both)
    starts = np.zeros(len(messages) + 1, dtype=np.int64)
    np.cumsum(pc.list_value_length(messages).to_numpy(zero_copy_only=False), out=starts[1:])
    rows = pa.ListArray.from_arrays(pa.array(starts, pa.int32()), pairs)
    frame = pl.from_arrow(pa.table({"k": rows}))
    assert isinstance(frame, pl.DataFrame)
    # {"k":[[...],...]}: the key and braces around the row's JSON are left out of the hash.
    lines = (
        frame.select(pl.struct("k").struct.json_encode())
        .to_series()
        .to_arrow(compat_level=pl.CompatLevel.oldest())
    )
    base = hashlib.sha256(source.encode("utf-8") + b"\x00")
    out = []
    for line in lines.cast(pa.large_binary()).to_pylist():
        digest = base.copy()
        digest.update(memoryview(line)[5:-1])
        out.append(digest.hexdigest()[:32])
    return out


def row_text(messages: list[dict[str, str]], roles: list[str]) -> str:
    return "\n".join(m["content"] for m in messages if m["role"] in roles)


def turn_contents(messages: pa.ChunkedArray, roles: list[str]) -> pa.ListArray:
    """Per row, the contents of its turns whose role is in ``roles``, in order."""
    arr = messages.combine_chunks()
    turns = pc.list_flatten(arr)
    owner = pc.list_parent_indices(arr).to_numpy(zero_copy_only=False)
    chosen = pc.is_in(turns.field("role"), pa.array(roles, turns.field("role").type))
    chosen = chosen.to_numpy(zero_copy_only=False)
    counts = np.bincount(owner[chosen], minlength=len(arr))
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    return pa.ListArray.from_arrays(offsets, turns.field("content").filter(pa.array(chosen)))


def row_texts(messages: pa.ChunkedArray, roles: list[str]) -> pa.Array:
    """:func:`row_text` of every row, with Arrow kernels."""
    return pc.binary_join(turn_contents(messages, roles), "\n")

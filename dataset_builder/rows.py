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
from collections.abc import Callable, Sequence
from json.encoder import encode_basestring
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

ROLES = ("system", "user", "assistant")

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
        return "[" + ",".join([f"[{_string(m['role'])},{_string(m['content'])}]" for m in messages]) + "]"
    except TypeError:  # a role or content that is not a string: json.dumps says what it makes of it
        return canonical_json([[m["role"], m["content"]] for m in messages])


def content_keys(messages: pa.Array | pa.ChunkedArray, roles: tuple[str, ...] | None = None) -> list[str]:
    """``content_key`` of every row of a ``messages`` column (of only its turns whose role is in
    ``roles``, when given), read column by column instead of as a dict per turn."""
    array = messages.combine_chunks() if isinstance(messages, pa.ChunkedArray) else messages
    items = array.flatten() if array.null_count == 0 else None
    if (
        items is None
        or not _is_struct_of_strings(items.type)
        or {items.type.field(i).name for i in range(items.type.num_fields)} != {"role", "content"}
        or items.null_count
        or items.field("role").null_count
        or items.field("content").null_count
    ):
        rows = array.to_pylist()
        return [content_key([m for m in row if roles is None or m["role"] in roles]) for row in rows]
    role_values = items.field("role").to_pylist()
    turns = [
        None if roles is not None and role not in roles else f"[{_string(role)},{_string(content)}]"
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
_string = encode_basestring


def canonical_json_lines(table: pa.Table) -> bytes:
    """``canonical_json(row) + "\\n"`` for every row of ``table``, UTF-8, in row order.

    Tables of strings, integers, booleans and lists of structs of strings (``messages``) are written
    by polars' JSON writer, which escapes strings as ``json.dumps(ensure_ascii=False)`` does (tests
    compare them on every ASCII character and beyond); other tables column by column here."""
    if not table.num_rows:
        return b""
    names = table.column_names
    if len(set(names)) != len(names):  # a row dict would keep only the last of a repeated name
        return "".join(canonical_json(row) + "\n" for row in table.to_pylist()).encode("utf-8")
    ordered = sorted(names)
    written = _polars_lines(table.select(ordered))
    if written is not None:
        return written
    template = "{" + ",".join(_string(name).replace("%", "%%") + ":%s" for name in ordered) + "}\n"
    columns = [_json_values(table.column(name).combine_chunks()) for name in ordered]
    return "".join([template % values for values in zip(*columns, strict=True)]).encode("utf-8")


def _polars_lines(table: pa.Table) -> bytes | None:
    """The JSON lines of ``table`` (columns already in key order) written by polars, or None when a
    column is of a type left to Python or a name would need escaping."""
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = column.type
        if _string(name) != f'"{name}"':
            return None
        if pat.is_string(kind) or pat.is_large_string(kind) or pat.is_integer(kind) or pat.is_boolean(kind):
            columns.append(column)
        elif (pat.is_list(kind) or pat.is_large_list(kind)) and _is_struct_of_strings(kind.value_type):
            fields = [kind.value_type.field(i).name for i in range(kind.value_type.num_fields)]
            if any(_string(field) != f'"{field}"' for field in fields):
                return None
            columns.append(_fields_sorted(column.combine_chunks()))
        else:
            return None
    try:
        import polars as pl
    except ImportError:  # an install without it: the same lines, written in Python
        return None
    frame = pl.from_arrow(pa.Table.from_arrays(columns, names=table.column_names))
    assert isinstance(frame, pl.DataFrame)
    lines = frame.select(pl.concat_str([pl.struct(pl.all()).struct.json_encode(), pl.lit("\n")]))
    array = lines.to_series().to_arrow(compat_level=pl.CompatLevel.oldest())
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    offsets = array.buffers()[1]
    width = 8 if pat.is_large_string(array.type) else 4
    first = int.from_bytes(offsets.slice(array.offset * width, width).to_pybytes(), "little", signed=True)
    last = int.from_bytes(
        offsets.slice((array.offset + len(array)) * width, width).to_pybytes(), "little", signed=True
    )
    return array.buffers()[2].slice(first, last - first).to_pybytes()


def _fields_sorted(array: pa.Array) -> pa.Array:
    """A list of structs with the structs' fields in name order (the order of sorted JSON keys)."""
    items = array.values
    names = sorted(items.type.field(i).name for i in range(items.type.num_fields))
    if names == [items.type.field(i).name for i in range(items.type.num_fields)]:
        return array
    values = pa.StructArray.from_arrays(
        [items.field(name) for name in names], names=names, mask=items.is_null() if items.null_count else None
    )
    kind = pa.large_list(values.type) if pat.is_large_list(array.type) else pa.list_(values.type)
    return type(array).from_arrays(
        array.offsets, values, type=kind, mask=array.is_null() if array.null_count else None
    )


def _json_values(array: pa.Array) -> list[str]:
    """Each value of ``array`` as ``canonical_json`` writes it inside a row."""
    kind = array.type
    if pat.is_string(kind) or pat.is_large_string(kind):
        return _with_nulls(array, _string)
    if pat.is_integer(kind):
        return _with_nulls(array, int.__repr__)
    if pat.is_boolean(kind):
        return _with_nulls(array, lambda v: "true" if v else "false")
    if (pat.is_list(kind) or pat.is_large_list(kind)) and _is_struct_of_strings(kind.value_type):
        return _list_of_structs(array)
    return [canonical_json(value) for value in array.to_pylist()]


def _with_nulls(array: pa.Array, write: Callable[[Any], str]) -> list[str]:
    values = array.to_pylist()
    if array.null_count == 0:
        return list(map(write, values))
    return ["null" if v is None else write(v) for v in values]


def _is_struct_of_strings(kind: pa.DataType) -> bool:
    return (
        pat.is_struct(kind)
        and kind.num_fields > 0
        and len({kind.field(i).name for i in range(kind.num_fields)}) == kind.num_fields
        and all(pat.is_string(kind.field(i).type) for i in range(kind.num_fields))
    )


def _list_of_structs(array: pa.Array) -> list[str]:
    """Lists of structs of strings (``messages``): each element ``{"content":...,"role":...}``."""
    items = array.flatten()  # the elements of the non-null lists, in order
    fields = sorted(items.type.field(i).name for i in range(items.type.num_fields))
    template = "{" + ",".join(_string(name).replace("%", "%%") + ":%s" for name in fields) + "}"
    parts = [_with_nulls(items.field(name), _string) for name in fields]
    # A null element, not only a struct of null fields, writes as null.
    valid = [True] * len(items) if items.null_count == 0 else items.is_valid().to_pylist()
    elements = (
        [
            template % values if ok else "null"
            for ok, values in zip(valid, zip(*parts, strict=True), strict=True)
        ]
        if parts
        else []
    )
    lengths = pc.list_value_length(array).to_pylist()
    out: list[str] = []
    start = 0
    for n in lengths:
        if n is None:
            out.append("null")
            continue
        out.append("[" + ",".join(elements[start : start + n]) + "]")
        start += n
    return out


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
    try:
        import polars as pl
    except ImportError:
        return [make_row_id(source, row) for row in messages.to_pylist()]
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

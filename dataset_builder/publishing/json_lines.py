"""JSON lines of a table's rows, for the content hash: ``canonical_json(row) + "\\n"`` per row.

Written column by column rather than as a dict per row: by polars' JSON writer where it applies,
else here in Python, value by value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from dataset_builder.rows import canonical_json, json_string


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
    template = "{" + ",".join(json_string(name).replace("%", "%%") + ":%s" for name in ordered) + "}\n"
    columns = [_json_values(table.column(name).combine_chunks()) for name in ordered]
    return "".join([template % values for values in zip(*columns, strict=True)]).encode("utf-8")


def _polars_lines(table: pa.Table) -> bytes | None:
    """The JSON lines of ``table`` (columns already in key order) written by polars, or None when a
    column is of a type left to Python or a name would need escaping."""
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = column.type
        if json_string(name) != f'"{name}"':
            return None
        if pat.is_string(kind) or pat.is_large_string(kind) or pat.is_integer(kind) or pat.is_boolean(kind):
            columns.append(column)
        elif (pat.is_list(kind) or pat.is_large_list(kind)) and _is_struct_of_strings(kind.value_type):
            fields = [kind.value_type.field(i).name for i in range(kind.value_type.num_fields)]
            if any(json_string(field) != f'"{field}"' for field in fields):
                return None
            columns.append(_fields_sorted(column.combine_chunks()))
        else:
            return None
    import polars as pl

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
        return _with_nulls(array, json_string)
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
    template = "{" + ",".join(json_string(name).replace("%", "%%") + ":%s" for name in fields) + "}"
    parts = [_with_nulls(items.field(name), json_string) for name in fields]
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

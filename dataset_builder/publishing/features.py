"""The ``features`` a dataset card declares for a version's columns, as ``datasets`` writes them.

``datasets.Features.from_arrow_schema(schema)._to_yaml_list()`` (datasets 4 and later) for the
types a build publishes (strings, numbers, booleans, nulls, lists and structs of them), written
here so that publishing does not import ``datasets`` (and pandas, fsspec and the Hub client with
it) for one list; any other type is still handed to ``datasets``.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.types as pat

# Arrow types whose ``datasets`` dtype is their Arrow name.
_VALUES = {
    pa.string(): "string",
    pa.large_string(): "large_string",
    pa.bool_(): "bool",
    pa.null(): "null",
    pa.binary(): "binary",
    pa.large_binary(): "large_binary",
    **{t: str(t) for t in (pa.int8(), pa.int16(), pa.int32(), pa.int64())},
    **{t: str(t) for t in (pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64())},
    pa.float16(): "float16",
    pa.float32(): "float32",
    pa.float64(): "float64",
}


class _Unknown(Exception):
    """A type this module leaves to ``datasets``."""


def card_features(schema: pa.Schema) -> list[dict[str, Any]]:
    """The card's ``dataset_info.features`` for ``schema``."""
    try:
        return [{"name": field.name, **_feature(field.type)} for field in schema]
    except _Unknown:
        from datasets import Features

        return Features.from_arrow_schema(schema)._to_yaml_list()


def _feature(kind: pa.DataType) -> dict[str, Any]:
    if kind in _VALUES:
        return {"dtype": _VALUES[kind]}
    if pat.is_struct(kind):
        return {"struct": _fields(kind)}
    if pat.is_list(kind):
        inner = _feature(kind.value_type)
        if list(inner) == ["dtype"]:
            return {"list": inner["dtype"]}
        if list(inner) == ["struct"]:
            return {"list": inner["struct"]}
        return {"list": inner}
    raise _Unknown(str(kind))


def _fields(kind: pa.StructType) -> list[dict[str, Any]]:
    return [{"name": kind.field(i).name, **_feature(kind.field(i).type)} for i in range(kind.num_fields)]

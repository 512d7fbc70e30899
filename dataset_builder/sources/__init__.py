"""Sources: read every source a recipe declares and adapt its records to canonical rows.

This is the pipeline's ``load`` step. It yields Arrow batches of canonical rows in recipe order
(source by source, file by file, record by record), rejects records an adapter cannot use, and
records a fingerprint of every input so a manifest can say exactly what a version was built from.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from dataset_builder.errors import InputError, RecipeError
from dataset_builder.hashing import file_sha256
from dataset_builder.recipe.schema import Recipe, SourceConfig
from dataset_builder.rows import CANONICAL_SCHEMA, MESSAGE_TYPE, MESSAGES_TYPE, row_ids
from dataset_builder.sources.adapters import ADAPTERS, RowProblem
from dataset_builder.sources.readers import (
    READERS,
    detect_format,
    expand_paths,
    file_columns,
    read_hub,
)
from dataset_builder.stages.base import StageContext

BATCH_ROWS = 2048
_RAW_KEEP_BYTES = 65_536


@dataclass
class LoadResult:
    inputs: list[dict[str, Any]] = field(default_factory=list)
    rows_per_source: dict[str, int] = field(default_factory=dict)


def _raw_for_reject(record: Any, size: int) -> Any:
    if size <= _RAW_KEEP_BYTES:
        return record
    # The record stays in its source file; the rejected table keeps a marked prefix, not 10 MB.
    import json

    text = json.dumps(record, ensure_ascii=False)
    return text[:_RAW_KEEP_BYTES] + f"... [truncated, {size} bytes in all]"


def display_names(paths: list[Path], base: Path) -> dict[Path, str]:
    """How a published version names its input files: the path from the recipe's folder, or, for a
    file outside it, the shortest tail of its path that tells it from the source's other files
    (never an absolute path of the building machine: keys and manifests travel to the Hub)."""
    names: dict[Path, str] = {}
    outside = [p for p in paths if not p.is_relative_to(base)]
    for path in paths:
        if path.is_relative_to(base):
            names[path] = path.relative_to(base).as_posix()
            continue
        for depth in range(1, len(path.parts)):
            tail = "/".join(path.parts[-depth:])
            if sum("/".join(o.parts[-depth:]) == tail for o in outside) == 1:
                break
        names[path] = tail
    return names


def _records(source: SourceConfig, base: Path, result: LoadResult) -> Iterator[tuple[str, Any, int, str]]:
    """Yield ``(key, record, size, origin)`` for one source; origin names the file for errors."""
    if source.type == "hub":
        entry = {
            "source": source.name,
            "hub_id": source.hub_id,
            "revision": source.revision,
            "split": source.split,
        }
        result.inputs.append(entry)
        records = read_hub(source.hub_id or "", source.revision, source.split, source.data_files, entry)
        for key, record, size in records:
            yield f"{source.hub_id}:{key}", record, size, str(source.hub_id)
        return
    paths = expand_paths(source.paths, base)
    names = display_names(paths, base)
    for path in paths:
        fmt = detect_format(path, source.format)
        rel = names[path]
        sha256 = file_sha256(path)
        result.inputs.append(
            {
                "source": source.name,
                "path": rel,
                "format": fmt,
                "bytes": path.stat().st_size,
                "sha256": sha256,
            }
        )
        adapter = ADAPTERS[source.adapter]
        columns = adapter.resolve_columns(source.columns)
        declared = file_columns(path, fmt)
        if declared is not None and (missing := adapter.missing_required(columns, declared)):
            raise InputError(f"{path}: missing column {missing} (columns: {', '.join(sorted(declared))})")
        first = True
        for locator, record, size in READERS[fmt](path):
            if (
                first
                and isinstance(record, dict)
                and (missing := adapter.missing_required(columns, set(record)))
            ):
                raise InputError(
                    f"{path}{locator}: missing column {missing} (found: {', '.join(sorted(record))}); "
                    "map it with [sources.columns]"
                )
            first = False
            yield f"{rel}{locator}", record, size, str(path)


def load_source(
    source: SourceConfig,
    base: Path,
    ctx: StageContext,
    result: LoadResult,
    *,
    max_row_bytes: int,
    limit: int | None = None,
) -> Iterator[pa.Table]:
    """Canonical rows of one source, in batches; unusable records go to ``ctx.reject``."""
    adapter = ADAPTERS[source.adapter]
    try:
        columns = adapter.resolve_columns(source.columns)
    except ValueError as exc:
        raise RecipeError(f"source {source.name!r}: key 'columns': {exc}") from None
    schema = adapter.schema()
    cap = min(x for x in (limit, source.limit, 2**63) if x is not None)
    batch = _Batch(source, schema)
    taken = 0
    # Counted as records are taken (not at the end), so a build that fails half-way still knows
    # what it read; the pipeline's load step reports these counts, a stage using this loader
    # declares the rows it keeps with ctx.read.
    result.rows_per_source[source.name] = 0
    for key, record, size, _origin in _records(source, base, result):
        if taken >= cap:
            break
        taken += 1
        result.rows_per_source[source.name] = taken
        bad = {"row_id": None, "source": source.name, "source_key": key, "messages": None}
        if size > max_row_bytes:
            bad["raw"] = _raw_for_reject(record, size)
            ctx.reject([bad], "row_too_large", f"{size} bytes > max_row_bytes {max_row_bytes}")
            continue
        if not isinstance(record, dict):
            bad["raw"] = record
            ctx.reject([bad], "not_an_object", f"record is {type(record).__name__}, expected an object")
            continue
        try:
            messages = adapter.to_messages(record, columns)
        except RowProblem as problem:
            bad["raw"] = _raw_for_reject(record, size)
            ctx.reject([bad], problem.reason, problem.detail)
            continue
        batch.add(key, messages, adapter.extra_values(record, columns))
        if batch.rows >= BATCH_ROWS:
            yield batch.table()
            batch = _Batch(source, schema)
    if batch.rows:
        yield batch.table()


class _Batch:
    """Canonical rows of one source gathered column by column: the turns flat, the row ids of a
    whole batch at once."""

    def __init__(self, source: SourceConfig, schema: pa.Schema) -> None:
        self.source = source
        self.schema = schema
        self.rows = 0
        self.keys: list[str] = []
        self.counts: list[int] = []
        self.roles: list[str] = []
        self.contents: list[str] = []
        self.extra: dict[str, list[str]] = {name: [] for name in schema.names[len(CANONICAL_SCHEMA) :]}

    def add(self, key: str, messages: list[dict[str, str]], extra: dict[str, str]) -> None:
        self.rows += 1
        self.keys.append(key)
        self.counts.append(len(messages))
        for message in messages:
            self.roles.append(message["role"])
            self.contents.append(message["content"])
        for name, values in self.extra.items():
            values.append(extra[name])

    def table(self) -> pa.Table:
        """What ``pa.Table.from_pylist`` makes of the rows as dicts, in ``schema``."""
        starts = np.zeros(self.rows + 1, dtype=np.int64)
        np.cumsum(self.counts, out=starts[1:])
        turns = pa.StructArray.from_arrays(
            [pa.array(self.roles, pa.string()), pa.array(self.contents, pa.string())],
            fields=list(MESSAGE_TYPE),
        )
        messages = pa.ListArray.from_arrays(pa.array(starts, pa.int32()), turns, type=MESSAGES_TYPE)
        columns = {
            "row_id": pa.array(row_ids(self.source.name, messages), pa.string()),
            "source": pa.array([self.source.name] * self.rows, pa.string()),
            "source_key": pa.array(self.keys, pa.string()),
            "lang": pa.array([self.source.language] * self.rows, pa.string()),
            "messages": messages,
            **{name: pa.array(values, pa.string()) for name, values in self.extra.items()},
        }
        return pa.Table.from_arrays([columns[name] for name in self.schema.names], schema=self.schema)


def load_sources(
    recipe: Recipe, ctx: StageContext, result: LoadResult, limit: int | None = None
) -> Iterator[pa.Table]:
    for source in recipe.sources:
        yield from load_source(
            source, recipe.base_dir(), ctx, result, max_row_bytes=recipe.publish.max_row_bytes, limit=limit
        )

"""The stage interface.

A stage is one class with one job: ``run`` takes an iterator of Arrow batches (``pa.Table`` with at
least the canonical columns of :mod:`dataset_builder.rows`) and yields batches. A stage may map,
filter, add columns or hold rows back until it has seen them all; it never knows which stages run
before or after it. Dropped rows go to ``ctx.reject`` with a reason, so nothing is silently lost.
The pipeline counts rows in and out; the stage adds what only it knows to ``ctx.stats``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.types as pat
from pydantic import BaseModel, ConfigDict

from dataset_builder.rows import REJECTED_SCHEMA, canonical_json


class StageConfig(BaseModel):
    """Base of every stage's settings model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class StageStats:
    """One stage's numbers. The pipeline counts rows in and out (per source too) at the stage's
    edges; the stage itself only adds drop reasons, counters and the rows it reads from a source."""

    name: str
    rows_in: int = 0
    rows_out: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    counters: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    in_by_source: Counter[str] = field(default_factory=Counter)
    out_by_source: Counter[str] = field(default_factory=Counter)
    # Rows that enter the build at this stage, read from a source rather than received from upstream.
    read_by_source: Counter[str] = field(default_factory=Counter)
    # False when the stage returned before reading its whole input: rows upstream were never read.
    input_exhausted: bool = True

    @property
    def rows_added(self) -> int:
        return sum(self.read_by_source.values())

    def as_dict(self) -> dict[str, Any]:
        out = {
            "stage": self.name,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "dropped": dict(sorted(self.dropped.items())),
            "counters": self.counters,
            "seconds": round(self.seconds, 3),
        }
        if self.name != "load" and self.rows_added:
            out["rows_added"] = self.rows_added
        return out


class RejectSink:
    """Collects rejected rows (with stage and reason) for the build's ``rejected`` table, and counts
    them by stage and source and by stage and reason as they arrive (for the conservation check and
    for failure reports, which must not depend on the stages' own counters)."""

    def __init__(self) -> None:
        self._rows: list[dict[str, Any]] = []
        self._tables: list[pa.Table] = []
        self.count = 0
        self.by_stage_source: Counter[tuple[str, str]] = Counter()
        self.by_stage_reason: Counter[tuple[str, str]] = Counter()
        # The first rejected row of each (stage, reason): "source_key: detail", to show as an example.
        self.examples: dict[tuple[str, str], str] = {}

    def add(
        self,
        stage: str,
        rows: list[dict[str, Any]],
        reason: str,
        detail: str | list[str] = "",
        duplicate_of: list[str] | None = None,
    ) -> None:
        details = detail if isinstance(detail, list) else [detail] * len(rows)
        originals = duplicate_of if duplicate_of is not None else [None] * len(rows)
        for row, why, original in zip(rows, details, originals, strict=True):
            raw = row.get("raw")
            self.by_stage_source[(stage, str(row.get("source")))] += 1
            self.by_stage_reason[(stage, reason)] += 1
            self.examples.setdefault(
                (stage, reason), f"{row.get('source_key')}: {why}" if why else str(row.get("source_key"))
            )
            self._rows.append(
                {
                    "row_id": row.get("row_id"),
                    "source": row.get("source"),
                    "source_key": row.get("source_key"),
                    "stage": stage,
                    "reason": reason,
                    "detail": why,
                    "duplicate_of": original,
                    "messages": row.get("messages"),
                    "raw": raw if raw is None or isinstance(raw, str) else canonical_json(raw),
                    "attempted_messages": row.get("attempted_messages"),
                }
            )
        self.count += len(rows)
        if len(self._rows) >= 4096:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._tables.append(pa.Table.from_pylist(self._rows, schema=REJECTED_SCHEMA))
            self._rows = []

    def table(self) -> pa.Table:
        self._flush()
        if not self._tables:
            return REJECTED_SCHEMA.empty_table()
        return pa.concat_tables(self._tables)

    def first(self, n: int = 1) -> list[dict[str, Any]]:
        self._flush()
        return self.table().slice(0, n).to_pylist()


@dataclass
class StageContext:
    """What a running stage may touch: its own stats, the reject sink, and a scratch folder."""

    stage: str
    stats: StageStats
    rejects: RejectSink
    workdir: Path
    show_progress: bool = True
    # Where relative paths in the stage's settings point from (the recipe's folder).
    base_dir: Path = field(default_factory=Path.cwd)
    # Per-source options from the recipe ({"language": "en", "translate": True}), by source name.
    source_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Whether the user allowed Python code the recipe brings (``build --trust-code``) to run.
    trust_code: bool = False

    def reject(
        self,
        rows: list[dict[str, Any]],
        reason: str,
        detail: str | list[str] = "",
        duplicate_of: list[str] | None = None,
    ) -> None:
        if not rows:
            return
        self.stats.dropped[reason] += len(rows)
        self.rejects.add(self.stage, rows, reason, detail, duplicate_of)

    def count(self, key: str, n: int = 1) -> None:
        self.stats.counters[key] = self.stats.counters.get(key, 0) + n

    def read(self, source: str, n: int) -> None:
        """Declare that ``n`` rows of ``source`` enter the build at this stage (read from a source,
        not received from upstream), so the build can account for every row it publishes."""
        self.stats.read_by_source[source] += n


class Stage(ABC):
    """One pipeline step. Subclasses set ``name`` and ``Config`` and implement ``run``."""

    name: ClassVar[str]
    Config: ClassVar[type[StageConfig]]

    def __init__(self, config: StageConfig | None = None) -> None:
        self.config = config if config is not None else self.Config()

    @abstractmethod
    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        """Consume batches, yield batches."""


def gather(batches: Iterator[pa.Table]) -> pa.Table | None:
    """All batches as one table, for stages that must see every row before deciding (None: no rows)."""
    tables = list(batches)
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="default").combine_chunks()


class Reject(Exception):
    """Raised by :meth:`RowStage.process` to drop one row with a reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


class RowStage(Stage):
    """A stage that looks at one row at a time: map it, or drop it by raising :class:`Reject`."""

    @abstractmethod
    def process(self, row: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
        """Return the (possibly changed) row, or raise :class:`Reject`."""

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        for batch in batches:
            kept: list[dict[str, Any]] = []
            for row in batch.to_pylist():
                try:
                    kept.append(self.process(row, ctx))
                except Reject as why:
                    ctx.reject([row], why.reason, why.detail)
            if kept:
                yield pa.Table.from_pylist(kept, schema=_schema_for(kept[0], batch.schema))


def _schema_for(row: dict[str, Any], schema: pa.Schema) -> pa.Schema | None:
    """Keep the incoming schema when the stage added no columns (stable types for empty lists)."""
    return schema if set(row) == set(schema.names) else None


def pylist_roundtrip(table: pa.Table, schema: pa.Schema | None) -> pa.Table | None:
    """``table`` typed as ``pa.Table.from_pylist(table.to_pylist(), schema=schema)`` types it (what
    :meth:`RowStage.run` yields), for a stage that built the same values on columns; None when
    that cannot be told from the types or reached by a lossless cast."""
    if schema is not None:
        if table.schema.names != schema.names or table.schema.types != schema.types:
            return None
        return table.cast(schema)
    columns = []
    for column in table.columns:
        array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        kind = _inferred_type(array)
        if kind is None:
            return None
        if kind == array.type:
            columns.append(array)
        elif pat.is_null(kind):
            columns.append(pa.nulls(len(array)))
        elif _widens(array.type, kind):
            columns.append(array.cast(kind))
        else:
            return None
    return pa.Table.from_arrays(columns, names=table.column_names)


def _inferred_type(array: pa.Array) -> pa.DataType | None:
    """The type Arrow infers from ``array.to_pylist()``; None for types not worked out here."""
    kind = array.type
    if array.null_count == len(array):
        return pa.null()
    if pat.is_string(kind) or pat.is_large_string(kind):
        return pa.string()
    if pat.is_boolean(kind):
        return pa.bool_()
    if pat.is_signed_integer(kind) or kind in (pa.uint8(), pa.uint16(), pa.uint32()):
        return pa.int64()
    if pat.is_floating(kind):
        return pa.float64()
    if pat.is_list(kind) or pat.is_large_list(kind):
        values = array.flatten()
        inner = pa.null() if len(values) == 0 else _inferred_type(values)
        return None if inner is None else pa.list_(inner)
    if pat.is_struct(kind):
        valid = array if array.null_count == 0 else array.filter(array.is_valid())
        fields = []
        for i in range(kind.num_fields):
            inner = _inferred_type(valid.field(i))
            if inner is None:
                return None
            fields.append(pa.field(kind.field(i).name, inner))
        return pa.struct(fields)
    return None


def _widens(have: pa.DataType, want: pa.DataType) -> bool:
    """A cast from ``have`` to ``want`` that keeps every value as Python would convert it."""
    if pat.is_integer(have) and want == pa.int64():
        return True
    if pat.is_floating(have) and want == pa.float64():
        return True
    return pat.is_large_string(have) and want == pa.string()

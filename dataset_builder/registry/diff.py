"""What changed between two versions of a dataset: rows by id and by content, and every statistic.

A row is matched across versions by its id; a row whose id survived can still have changed (a
translation rewrites its messages but keeps the id of its source row), so each matched row is
compared column by column through a hash of each value. A row whose id changed but whose place in
its source (``source``, ``source_key``) did not is a change too, not one removal plus one addition.
"""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dataset_builder.registry.store import VersionInfo
from dataset_builder.rows import canonical_json

# Where a row sits and how it is grouped, not what it says: left out of the content comparison
# (deleting a line of a source file moves every later row's source_key without changing them).
_NOT_CONTENT = frozenset({"row_id", "source", "source_key", "dup_cluster", "dup_cluster_size"})
_MAX_LINES = 24  # per row and side in the side-by-side view


@dataclass(frozen=True)
class Change:
    old_id: str
    new_id: str  # the same as old_id when the row kept its id
    columns: tuple[str, ...]  # the columns whose values differ


@dataclass
class VersionDiff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    moved: list[tuple[str, str, str]] = field(default_factory=list)  # (row id, old split, new split)
    stats: list[tuple[str, Any, Any]] = field(default_factory=list)  # (statistic, old, new)


@dataclass(frozen=True)
class _Row:
    split: str
    source: str
    source_key: str
    digests: tuple[bytes, ...]  # one per compared column, in the order of the compared columns


def _columns(info: VersionInfo) -> list[str]:
    names: list[str] = []
    for meta in info.manifest["splits"].values():
        for name in pq.read_schema(info.path / meta["file"]).names:
            if name not in names:
                names.append(name)
    return names


def _digest(value: Any) -> bytes:
    return hashlib.blake2b(canonical_json(value).encode("utf-8"), digest_size=12).digest()


def _tables(info: VersionInfo, columns: list[str]) -> Iterator[tuple[str, pa.Table]]:
    for split, meta in info.manifest["splits"].items():
        path = info.path / meta["file"]
        present = [c for c in columns if c in pq.read_schema(path).names]
        yield split, pq.read_table(path, columns=present)


def _rows(info: VersionInfo, compared: list[str]) -> dict[str, _Row]:
    """row id -> where the row is and a hash of each compared column."""
    out = {}
    for split, table in _tables(info, ["row_id", "source", "source_key", *compared]):
        for batch in table.to_batches(max_chunksize=4096):
            for row in batch.to_pylist():
                digests = tuple(_digest(row.get(c)) for c in compared)
                out[row["row_id"]] = _Row(split, row["source"], row["source_key"], digests)
    return out


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        out[prefix] = value


def statistics(manifest: dict[str, Any]) -> dict[str, Any]:
    """Every number a manifest reports, by a dotted name (timings left out: they are not data)."""
    out: dict[str, Any] = {}
    for stage in manifest["stages"]:
        _flatten(
            f"stage.{stage['stage']}", {k: v for k, v in stage.items() if k not in ("stage", "seconds")}, out
        )
    for split, meta in manifest["splits"].items():
        _flatten(f"split.{split}", {k: v for k, v in meta.items() if k not in ("bytes",)}, out)
    _flatten("rejected", manifest["rejected"].get("by_stage_reason", {}), out)
    _flatten("tokens", manifest.get("tokens", {}), out)
    return out


def diff(old: VersionInfo, new: VersionInfo) -> VersionDiff:
    old_columns, new_columns = _columns(old), _columns(new)
    # Columns only one version has (a stage added or removed) would mark every row: they show in
    # the statistics and the recipe instead.
    compared = [c for c in old_columns if c in new_columns and c not in _NOT_CONTENT]
    a, b = _rows(old, compared), _rows(new, compared)

    def differing(x: _Row, y: _Row) -> tuple[str, ...]:
        return tuple(c for c, dx, dy in zip(compared, x.digests, y.digests, strict=True) if dx != dy)

    result = VersionDiff()
    for row_id in sorted(a.keys() & b.keys()):
        if columns := differing(a[row_id], b[row_id]):
            result.changed.append(Change(row_id, row_id, columns))
    by_place_old = {(r.source, r.source_key): rid for rid, r in a.items() if rid not in b}
    by_place_new = {(r.source, r.source_key): rid for rid, r in b.items() if rid not in a}
    replaced = []
    for place, new_id in sorted(by_place_new.items()):
        if place in by_place_old:
            old_id = by_place_old[place]
            replaced.append(Change(old_id, new_id, differing(a[old_id], b[new_id])))
    result.changed += replaced
    changed_old = {c.old_id for c in replaced}
    changed_new = {c.new_id for c in replaced}
    result.removed = sorted(r for r in a if r not in b and r not in changed_old)
    result.added = sorted(r for r in b if r not in a and r not in changed_new)
    result.moved = sorted(
        (r, a[r].split, b[r].split) for r in a.keys() & b.keys() if a[r].split != b[r].split
    )
    sa, sb = statistics(old.manifest), statistics(new.manifest)
    result.stats = [
        (k, sa.get(k), sb.get(k)) for k in sorted(sa.keys() | sb.keys()) if sa.get(k) != sb.get(k)
    ]
    return result


def _fetch(info: VersionInfo, ids: set[str]) -> dict[str, dict[str, Any]]:
    """The full rows with these ids."""
    if not ids:
        return {}
    out = {}
    wanted = pa.array(sorted(ids), pa.string())
    for _, table in _tables(info, _columns(info)):
        for row in table.filter(pc.is_in(table.column("row_id"), wanted)).to_pylist():
            out[row["row_id"]] = row
    return out


def _lines(value: Any, width: int) -> list[str]:
    """A column's value as wrapped lines: a conversation turn by turn, text as text."""
    if isinstance(value, list) and all(isinstance(m, dict) and "role" in m for m in value):
        chunks = [f"{m['role']}: {m.get('content') or ''}" for m in value]
    elif isinstance(value, str):
        chunks = [value]
    else:
        chunks = [canonical_json(value)]
    out: list[str] = []
    for chunk in chunks:
        for line in chunk.splitlines() or [""]:
            out += textwrap.wrap(line, width, replace_whitespace=False, drop_whitespace=False) or [""]
    return out


def _side_by_side(left: list[str], right: list[str], width: int) -> list[str]:
    n = max(len(left), len(right))
    rows = []
    for i in range(min(n, _MAX_LINES)):
        lhs = left[i] if i < len(left) else ""
        rhs = right[i] if i < len(right) else ""
        # "!" marks lines that differ, which matters when the difference is invisible (whitespace).
        rows.append(f"    {'!' if lhs != rhs else ' '} {lhs:<{width}} | {rhs}".rstrip())
    if n > _MAX_LINES:
        rows.append(f"      ... {n - _MAX_LINES} more line(s)")
    return rows


def render(old: VersionInfo, new: VersionInfo, d: VersionDiff, show: int = 10, width: int = 60) -> str:
    lines = [
        f"{old.ref} -> {new.ref}",
        f"rows: +{len(d.added)} added, -{len(d.removed)} removed, ~{len(d.changed)} changed, "
        f"{len(d.moved)} moved between splits",
    ]
    for label, ids in (("added", d.added), ("removed", d.removed)):
        for row_id in ids[:show]:
            lines.append(f"  {label:<8}{row_id}")
    shown = d.changed[:show]
    before = _fetch(old, {c.old_id for c in shown})
    after = _fetch(new, {c.new_id for c in shown})
    for change in shown:
        ids = change.old_id if change.old_id == change.new_id else f"{change.old_id} -> {change.new_id}"
        lines.append(f"  changed {ids} ({', '.join(change.columns) or 'id only'})")
        for column in change.columns:
            lines.append(f"    {column}: {old.ref} | {new.ref}")
            lines += _side_by_side(
                _lines(before[change.old_id].get(column), width),
                _lines(after[change.new_id].get(column), width),
                width,
            )
    for row_id, was, now in d.moved[:show]:
        lines.append(f"  moved   {row_id} {was} -> {now}")
    if d.stats:
        lines.append("statistics:")
        key_width = max(len(k) for k, _, _ in d.stats)
        for key, was, now in d.stats:
            delta = (
                f"  ({now - was:+g})" if isinstance(was, int | float) and isinstance(now, int | float) else ""
            )
            lines.append(f"  {key:<{key_width}}  {was!s:>10} -> {now!s:<10}{delta}")
    return "\n".join(lines)

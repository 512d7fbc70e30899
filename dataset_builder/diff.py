"""What changed between two versions of a dataset: rows by id, and every statistic."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq

from dataset_builder.registry import VersionInfo


@dataclass
class VersionDiff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    # same place in the same source (source, source_key), different content: (old id, new id)
    changed: list[tuple[str, str]] = field(default_factory=list)
    moved: list[tuple[str, str, str]] = field(default_factory=list)  # (row id, old split, new split)
    stats: list[tuple[str, Any, Any]] = field(default_factory=list)  # (statistic, old, new)


def _rows(info: VersionInfo) -> dict[str, tuple[str, str, str]]:
    """row id -> (split, source, source_key)."""
    out = {}
    for split, meta in info.manifest["splits"].items():
        table = pq.read_table(info.path / meta["file"], columns=["row_id", "source", "source_key"])
        for row_id, source, key in zip(
            *(table.column(c).to_pylist() for c in table.column_names), strict=True
        ):
            out[row_id] = (split, source, key)
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
    a, b = _rows(old), _rows(new)
    result = VersionDiff()
    by_place_old = {(src, key): rid for rid, (_, src, key) in a.items() if rid not in b}
    by_place_new = {(src, key): rid for rid, (_, src, key) in b.items() if rid not in a}
    for place, new_id in sorted(by_place_new.items()):
        if place in by_place_old:
            result.changed.append((by_place_old[place], new_id))
    changed_old = {o for o, _ in result.changed}
    changed_new = {n for _, n in result.changed}
    result.removed = sorted(r for r in a if r not in b and r not in changed_old)
    result.added = sorted(r for r in b if r not in a and r not in changed_new)
    result.moved = sorted((r, a[r][0], b[r][0]) for r in a.keys() & b.keys() if a[r][0] != b[r][0])
    sa, sb = statistics(old.manifest), statistics(new.manifest)
    result.stats = [
        (k, sa.get(k), sb.get(k)) for k in sorted(sa.keys() | sb.keys()) if sa.get(k) != sb.get(k)
    ]
    return result


def render(old: VersionInfo, new: VersionInfo, d: VersionDiff, show: int = 10) -> str:
    lines = [
        f"{old.ref} -> {new.ref}",
        f"rows: +{len(d.added)} added, -{len(d.removed)} removed, ~{len(d.changed)} changed, "
        f"{len(d.moved)} moved between splits",
    ]
    for label, ids in (("added", d.added), ("removed", d.removed)):
        for row_id in ids[:show]:
            lines.append(f"  {label:<8}{row_id}")
    for old_id, new_id in d.changed[:show]:
        lines.append(f"  changed {old_id} -> {new_id}")
    if d.stats:
        lines.append("statistics:")
        width = max(len(k) for k, _, _ in d.stats)
        for key, before, after in d.stats:
            delta = (
                f"  ({after - before:+g})"
                if isinstance(before, int | float) and isinstance(after, int | float)
                else ""
            )
            lines.append(f"  {key:<{width}}  {before!s:>10} -> {after!s:<10}{delta}")
    return "\n".join(lines)

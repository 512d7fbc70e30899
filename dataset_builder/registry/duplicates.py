"""Near-duplicate clusters of a published version, for people to inspect what was removed."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dataset_builder.registry.store import VersionInfo

_COLUMNS = ["row_id", "source", "source_key", "messages"]


@dataclass
class Cluster:
    keeper_id: str
    keeper: dict[str, Any] | None
    others: list[dict[str, Any]] = field(default_factory=list)
    removed: bool = True  # False: a "mark" cluster, every member kept

    @property
    def size(self) -> int:
        return 1 + len(self.others)


def clusters(info: VersionInfo, top: int = 10) -> list[Cluster]:
    """The ``top`` largest clusters: removed rows (from ``rejected``) grouped by the row kept in
    their place, plus clusters kept whole (``action = "mark"``)."""
    rejected = pq.read_table(info.path / info.manifest["rejected"]["file"])
    removed = rejected.filter(pc.equal(rejected.column("reason"), "near_duplicate"))
    found: dict[str, Cluster] = {}
    for row in removed.select([*_COLUMNS, "duplicate_of"]).to_pylist():
        found.setdefault(row["duplicate_of"], Cluster(row["duplicate_of"], None)).others.append(row)

    data = [pq.read_table(info.path / meta["file"]) for meta in info.manifest["splits"].values()]
    table = pa.concat_tables(data, promote_options="default")
    if found:
        keepers = table.filter(pc.is_in(table.column("row_id"), pa.array(list(found))))
        for row in keepers.select(_COLUMNS).to_pylist():
            found[row["row_id"]].keeper = row
    if "dup_cluster_size" in table.schema.names:
        marked = table.filter(pc.greater(table.column("dup_cluster_size"), 1))
        for row in marked.select([*_COLUMNS, "dup_cluster"]).to_pylist():
            cluster = found.setdefault(row["dup_cluster"], Cluster(row["dup_cluster"], None, removed=False))
            if row["row_id"] == row["dup_cluster"]:
                cluster.keeper = row
            elif row not in cluster.others:
                cluster.others.append(row)
    return sorted(found.values(), key=lambda c: (-c.size, c.keeper_id))[:top]


def _prompt(row: dict[str, Any] | None) -> str:
    if row is None:
        return "(not in the published data: dropped by a later stage)"
    return "\n".join(m["content"] for m in row["messages"] if m["role"] == "user")


def render(cluster: Cluster, width: int = 60, chars: int = 240) -> str:
    """The kept row and each other member side by side."""
    label = "removed" if cluster.removed else "also kept"
    head = f"cluster {cluster.keeper_id[:12]}  size {cluster.size}"
    lines = [head, "-" * len(head)]
    keeper_where = f"{cluster.keeper['source']} {cluster.keeper['source_key']}" if cluster.keeper else "?"
    left = textwrap.wrap(f"KEPT {keeper_where}: {_prompt(cluster.keeper)[:chars]}", width) or [""]
    for other in cluster.others:
        right = textwrap.wrap(
            f"{label.upper()} {other['source']} {other['source_key']}: {_prompt(other)[:chars]}", width
        )
        for i in range(max(len(left), len(right))):
            lines.append(
                f"{left[i] if i < len(left) else '':<{width}} | {right[i] if i < len(right) else ''}"
            )
        lines.append("")
    return "\n".join(lines)

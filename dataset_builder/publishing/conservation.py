"""The conservation law of a build: every row read is published or rejected, none is lost.

Checked at publish from counts taken at the stages' edges (rows in and out per source, counted by
the pipeline as batches pass), the rows each stage declares it read from a source, the rejected
rows per stage and source (counted by the reject sink), and the rows per source the writer put in
the split files. None of these comes from the stage being checked, so a stage that drops a row
without rejecting it, or stops reading its input half-way, fails the build and is named.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import pairwise

from dataset_builder.errors import ConservationError
from dataset_builder.stages.base import StageStats


def rows_by_source(
    stats: Sequence[StageStats],
    rejected: Mapping[tuple[str, str], int],
    published: Mapping[str, int],
) -> dict[str, dict[str, int]]:
    """Rows read, published and rejected per source, whether or not they balance."""
    read: Counter[str] = Counter()
    for stage in stats:
        read.update(stage.read_by_source)
    dropped: Counter[str] = Counter()
    for (_stage, source), n in rejected.items():
        dropped[source] += n
    sources = sorted(set(read) | set(dropped) | set(published))
    return {s: {"read": read[s], "published": published.get(s, 0), "rejected": dropped[s]} for s in sources}


def check(
    stats: Sequence[StageStats],
    rejected: Mapping[tuple[str, str], int],
    published: Mapping[str, int],
) -> dict[str, dict[str, int]]:
    """Raise :class:`ConservationError` naming the stage and source where rows went missing (or
    appeared from nowhere); return the per-source account when every row is accounted for."""
    # From the end: a stage that returns early leaves every stage before it half-read too, and the
    # one to name is the last of them.
    for stage in reversed(stats[1:]):
        if not stage.input_exhausted:
            raise ConservationError(
                f"stage {stage.name!r} stopped reading its input after {stage.rows_in} rows: the rows after "
                "them were never read, so the build cannot account for them"
            )
    for before, after in pairwise(stats):
        for source in sorted(set(before.out_by_source) | set(after.in_by_source)):
            sent, received = before.out_by_source[source], after.in_by_source[source]
            if sent != received:
                raise ConservationError(
                    f"rows lost between stages {before.name!r} and {after.name!r}: source {source!r} "
                    f"{sent} rows out of one, {received} into the next"
                )
    for stage in stats:
        sources = set(stage.in_by_source) | set(stage.read_by_source) | set(stage.out_by_source)
        sources |= {s for (name, s) in rejected if name == stage.name}
        for source in sorted(sources):
            came = stage.in_by_source[source] + stage.read_by_source[source]
            went = stage.out_by_source[source] + rejected.get((stage.name, source), 0)
            if came == went:
                continue
            counts = (
                f"source {source!r}: {stage.in_by_source[source]} in"
                + (f", {stage.read_by_source[source]} read" if stage.read_by_source[source] else "")
                + f", {stage.out_by_source[source]} out, {rejected.get((stage.name, source), 0)} rejected"
            )
            if came > went:
                raise ConservationError(
                    f"rows lost in stage {stage.name!r}: {counts} ({came - went} unaccounted for); "
                    "a stage may drop a row only by rejecting it with a reason"
                )
            raise ConservationError(
                f"rows from nowhere in stage {stage.name!r}: {counts} ({went - came} more than came in); "
                "a stage that adds rows declares them with ctx.read(source, n)"
            )
    account = rows_by_source(stats, rejected, published)
    for source, n in account.items():
        if n["read"] != n["published"] + n["rejected"]:
            raise ConservationError(
                f"source {source!r}: {n['read']} rows read, {n['published']} published, {n['rejected']} "
                f"rejected ({n['read'] - n['published'] - n['rejected']} unaccounted for)"
            )
    return account


def stage_funnel(
    stats: Sequence[StageStats], rejected_by_stage_source: Counter[tuple[str, str]]
) -> list[dict]:
    """Per stage and source: rows in (received and read from a source), rejected and out, from the
    counts the run took at every stage's edges (the ones the conservation law is checked on)."""
    out = []
    for s in stats:
        rejected: dict[str, int] = {}
        for (stage, source), n in rejected_by_stage_source.items():
            if stage == s.name:
                rejected[source] = rejected.get(source, 0) + n
        out.append(
            {
                "stage": s.name,
                "in": dict(s.in_by_source),
                "added": dict(s.read_by_source),
                "rejected": rejected,
                "out": dict(s.out_by_source),
            }
        )
    return out

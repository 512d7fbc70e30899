"""Run a recipe: recipe -> sources -> stages -> executor -> publish -> registry.

This module only wires those steps together. The executor (:mod:`dataset_builder.executors`:
this process, or a Ray cluster) runs the stages over the sources' batches and counts rows in and
out of every stage, per source; :mod:`dataset_builder.publishing.publish` checks the counts (the conservation
law), writes the manifest and card and hands a whole version to the registry. Everything lands in
a staging folder first; a build that fails after reading data leaves a failure report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dataset_builder.errors import BuildError, PublishError, RejectLimitExceeded, UserError
from dataset_builder.executors import executor_for
from dataset_builder.executors.base import BuildRun
from dataset_builder.publishing.failures import clear_report, top_reasons, write_failure_report
from dataset_builder.publishing.identity import refuse_or_skip
from dataset_builder.publishing.publish import library_versions, publish_build
from dataset_builder.recipe.schema import Recipe
from dataset_builder.registry.store import Registry

__all__ = ["BuildResult", "build", "library_versions", "raise_with_report"]


@dataclass(frozen=True)
class BuildResult:
    ref: str
    path: Path
    content_hash: str
    published: bool
    manifest: dict[str, Any]
    # False when the version was already published from the same recipe, inputs and model, so no
    # stage ran.
    ran: bool = True


def build(
    recipe: Recipe, registry: Registry, *, limit: int | None = None, show_progress: bool = True
) -> BuildResult:
    name = recipe.dataset.name
    version = recipe.dataset.version if limit is None else f"{recipe.dataset.version}+limit{limit}"
    if refuse_or_skip(recipe, registry, version):  # published from the same recipe, inputs and model
        info = registry.get(f"{name}@{version}")
        return BuildResult(
            info.ref, info.path, info.manifest["content_hash"], False, info.manifest, ran=False
        )
    started = datetime.now(UTC)
    run = BuildRun()
    with registry.staging(name, version) as staging:
        try:
            with executor_for(recipe.run) as executor:
                written = executor.execute(recipe, run, staging, limit, show_progress, f"{name}@{version}")
            published = publish_build(recipe, registry, staging, name, version, started, run, written)
        except BaseException as exc:
            raise_with_report(exc, registry, recipe, name, version, run)
            raise
    clear_report(registry.root, name, version)
    info = registry.get(f"{name}@{version}")
    return BuildResult(info.ref, info.path, written["content_hash"], published, info.manifest)


def raise_with_report(
    exc: BaseException, registry: Registry, recipe: Recipe, name: str, version: str, run: BuildRun
) -> None:
    """For a build that fails after reading data: write its failure report and raise one line
    naming the top reject reasons and the report. Returns (and the caller re-raises ``exc``) when
    no data was read, or for interrupts other than Ctrl-C."""
    if isinstance(exc, GeneratorExit | SystemExit) or run.rows_read() == 0:
        return
    try:
        where = write_failure_report(
            registry.root,
            name,
            version,
            error=exc,
            failed_stage=run.failed_stage,
            stages=[s.as_dict() for s in run.stats],
            rejects=run.rejects,
            # Nothing was published: what reached the split files is reported as written.
            rows_by_source={
                source: {"read": n["read"], "written": n["published"], "rejected": n["rejected"]}
                for source, n in run.rows_by_source().items()
            },
            recipe=recipe.resolved(),
        )
        look = f"stage counts and rejected rows in {where}"
    except (OSError, UserError) as report_error:  # a full disk, a link planted at failed/
        look = f"no failure report ({getattr(report_error, 'strerror', None) or report_error})"
    if isinstance(exc, KeyboardInterrupt):
        return
    so_far = (
        f"; rejected so far: {top_reasons(run.rejects)}"
        # A refused publish has nothing to do with the rows rejected on the way.
        if run.rejects.count and not isinstance(exc, RejectLimitExceeded | PublishError)
        else ""
    )
    message = f"{exc}{so_far}; nothing published; {look}"
    if isinstance(exc, UserError):
        exc.args = (message,)
        return
    if isinstance(exc, Exception):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        stage = f"stage {run.failed_stage!r} failed" if run.failed_stage else "the build failed"
        raise BuildError(
            f"{stage}: {type(exc).__name__}: {first}{so_far}; nothing published; {look} (with the traceback)"
        ) from exc

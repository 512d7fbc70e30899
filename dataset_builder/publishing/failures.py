"""What a failed build leaves to inspect: ``REGISTRY/failed/NAME@VERSION/``.

A build that fails after it has read data writes the stage statistics so far, the rejected rows so
far and the error there, and its one-line error names the top reasons rows were rejected, by
stage, and that folder. The folder is replaced by the next failure of the same version and removed
when the version is published. It is written beside the versions, never inside one, and
atomically (a temporary folder renamed into place), so a report is either whole or absent.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dataset_builder.publishing.writer import write_table
from dataset_builder.registry.anchored import Folder, LinkRefused
from dataset_builder.registry.names import check_name, check_version
from dataset_builder.stages.base import RejectSink

log = logging.getLogger("dataset_builder")
FAILED_DIR = "failed"
REPORT = "report.json"
REJECTED = "rejected.parquet"


def failure_dir(registry_root: Path, name: str, version: str) -> Path:
    return registry_root / FAILED_DIR / f"{name}@{version}"


def _one_line(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def top_reasons(rejects: RejectSink, n: int = 4) -> str:
    """``translate/length_ratio 85, near_dedup/near_duplicate 58, ... (e.g. file:8: detail)``."""
    ranked = sorted(rejects.by_stage_reason.items(), key=lambda item: (-item[1], item[0]))
    if not ranked:
        return "no rows rejected"
    parts = [f"{stage}/{reason} {count}" for (stage, reason), count in ranked[:n]]
    if len(ranked) > n:
        parts.append(f"{len(ranked) - n} more reasons")
    example = rejects.examples.get(ranked[0][0])
    return ", ".join(parts) + (f" (e.g. {_one_line(example)})" if example else "")


def write_failure_report(
    registry_root: Path,
    name: str,
    version: str,
    *,
    error: BaseException,
    failed_stage: str | None,
    stages: list[dict[str, Any]],
    rejects: RejectSink,
    rows_by_source: Mapping[str, Mapping[str, int]],
    recipe: Mapping[str, Any],
) -> Path:
    """Write the report folder for a failed build; return its path. ``failed/`` and everything in
    it are reached through open folders (:mod:`dataset_builder.registry.anchored`): a link planted at
    ``failed`` or at the report's folder is refused or replaced, never written through."""
    entry = _entry(name, version)
    with Folder.open_root(registry_root, create=True) as root, root.open(FAILED_DIR, create=True) as failed:
        tmp = failed.make_private(".tmp-")
        try:
            with failed.open(tmp) as folder:
                out = folder.fd_path()
                write_table(out / REJECTED, rejects.table())
                by_reason = {
                    f"{stage}/{reason}": n for (stage, reason), n in sorted(rejects.by_stage_reason.items())
                }
                report = {
                    "ref": entry,
                    "failed_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "error": str(error),
                    "error_type": type(error).__name__,
                    "failed_stage": failed_stage,
                    "traceback": "".join(traceback.format_exception(error)),
                    "stages": stages,
                    "rows_by_source": rows_by_source,
                    "rejected": {"rows": rejects.count, "file": REJECTED, "by_stage_reason": by_reason},
                    "recipe": recipe,
                }
                (out / REPORT).write_text(
                    json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
                )
            old = None
            if failed.lstat(entry) is not None:
                old = f".old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                failed.rename(entry, old)
            failed.rename(tmp, entry)
            if old is not None:
                failed.remove_tree(old, ignore_errors=True)
        finally:
            failed.remove_tree(tmp, ignore_errors=True)
    return failure_dir(registry_root, name, version)


def clear_report(registry_root: Path, name: str, version: str) -> None:
    """Remove the report of an earlier failure of a version that has now been published. A link
    at ``failed`` is not the registry's folder: there is no report of ours to remove through it."""
    entry = _entry(name, version)
    try:
        with Folder.open_root(registry_root) as root, root.open(FAILED_DIR) as failed:
            failed.remove_tree(entry, ignore_errors=True)
    except FileNotFoundError:
        return
    except LinkRefused as exc:
        log.warning("%s; no failure report removed", exc)


def _entry(name: str, version: str) -> str:
    where = f"{name}@{version}"
    return f"{check_name(name, where)}@{check_version(version, where)}"

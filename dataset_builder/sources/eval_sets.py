"""Evaluation sets as a recipe names them (a local file or a Hub dataset, the columns to compare),
read into their texts with what the manifest records of each (files' checksums, the Hub commit)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from dataset_builder.errors import InputError
from dataset_builder.hashing import file_sha256
from dataset_builder.network import hub_offline
from dataset_builder.sources import display_names
from dataset_builder.sources.readers import READERS, detect_format, expand_paths, read_hub
from dataset_builder.stages.base import StageConfig

_COMMIT = re.compile(r"[0-9a-f]{40}")


class EvalSet(StageConfig):
    name: str
    paths: list[str] = Field(default_factory=list)
    format: Literal["auto", "jsonl", "json", "parquet", "csv"] = "auto"
    hub_id: str | None = None
    # A branch, tag or commit; a 40-hex commit pins the set (the manifest records what it resolved to).
    revision: str | None = None
    split: str = "test"
    data_files: list[str] | None = None
    columns: list[str] = Field(default_factory=lambda: ["prompt"], min_length=1)
    id_column: str | None = None
    language: str = Field(default="en", min_length=1)

    @model_validator(mode="after")
    def _check(self) -> EvalSet:
        if bool(self.paths) == bool(self.hub_id):
            raise ValueError("an eval set needs either 'paths' or 'hub_id'")
        return self


@dataclass
class EvalTexts:
    """The texts of one evaluation set; ``item[k]`` names the item text ``k`` came from."""

    name: str
    texts: list[str] = field(default_factory=list)
    item: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    parts: list[list[str]] = field(default_factory=list)  # per text: its columns' values
    # The texts a method compares (the copy method adds each text's parts in other orders) and
    # the text each came from; filled by the stage.
    orders: list[str] = field(default_factory=list)
    origin: list[int] = field(default_factory=list)


def read_eval_set(spec: EvalSet, base: Path) -> EvalTexts:
    """The texts of ``spec`` (a local file or a Hub dataset), with what the manifest records of it."""
    out = EvalTexts(spec.name, info={"language": spec.language})
    if spec.hub_id:
        fingerprint: dict[str, Any] = {}
        records: Iterator[tuple[str, Any, int]] = read_hub(
            spec.hub_id, spec.revision, spec.split, spec.data_files, fingerprint
        )
        origin = spec.hub_id
        out.info.update(hub_id=spec.hub_id, revision=spec.revision, split=spec.split)
    else:
        files = expand_paths(spec.paths, base)
        records = (rec for path in files for rec in READERS[detect_format(path, spec.format)](path))
        origin = ", ".join(spec.paths)
        names = display_names(files, base)  # the manifest travels: no path of this machine in it
        out.info["sha256"] = {names[path]: file_sha256(path) for path in files}
    seen: set[str] = set()
    wanted = [*spec.columns, *([spec.id_column] if spec.id_column else [])]
    for index, (_, record, _) in enumerate(records):
        if not isinstance(record, dict):
            continue
        seen.update(record)
        parts = [str(record[c]) for c in spec.columns if record.get(c) not in (None, "")]
        out.texts.append("\n".join(parts))
        out.parts.append(parts)
        label = record.get(spec.id_column) if spec.id_column else None
        out.item.append(str(label) if label not in (None, "") else f"#{index}")
    missing = [c for c in wanted if c not in seen]
    if missing:
        raise InputError(
            f"eval set {spec.name!r} ({origin}): no column {missing[0]!r} (found: {', '.join(sorted(seen))})"
        )
    if spec.hub_id:
        out.info["rows"] = fingerprint.get("rows")
        if spec.revision and _COMMIT.fullmatch(spec.revision):
            out.info["commit"] = spec.revision
        else:
            out.info["commit"] = fingerprint.get(
                "commit", "unknown (offline: pin a 40-hex revision to record it)" if hub_offline() else None
            )
    return out

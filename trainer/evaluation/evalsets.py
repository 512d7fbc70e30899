"""Evaluation sets declared as data (TOML), looked up by name, as lm-evaluation-harness does.

A set is texts from a published dataset version's split (the only door into the corpus) or from an
external dataset (Hub id or local file) with a field mapping, optionally transformed:

- ``variant = "code_and_instructions"``: each row keeps its user turns and only the code of its
  assistant turns (fenced, indented or bare code blocks, as the translation segmenter finds them).
- ``filter = "without_python"``: drops rows that contain Python. The rule: a row is Python when any
  field has a fenced block tagged ``python``/``py``, or a field that parses with ``ast`` into at least
  one real statement (not a lone name or constant), or when the prompt mentions "python".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dataset_builder.errors import InputError, RecipeError
from trainer.settings_file import read_toml


class EvalSetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    # a published version of ours
    dataset: str | None = Field(None, description="NAME@VERSION or ORG/NAME@VERSION")
    # or an external dataset
    hub_id: str | None = None
    hub_config: str | None = None
    revision: str | None = None
    paths: list[str] = Field(default_factory=list)
    split: str = "test"
    fields: list[str] = Field(default_factory=lambda: ["text"], min_length=1)
    join: str = "\n"
    variant: Literal["full", "code_and_instructions"] = "full"
    filter: Literal["none", "without_python"] = "none"
    drop_empty: bool = False

    @model_validator(mode="after")
    def _one_origin(self) -> EvalSetSpec:
        if sum(bool(x) for x in (self.dataset, self.hub_id, self.paths)) != 1:
            raise ValueError("a set needs exactly one of 'dataset', 'hub_id' or 'paths'")
        return self


@dataclass
class EvalSet:
    name: str
    texts: list[str]
    source: dict[str, Any]


def load_specs(entries: list[str], base: Path | None = None) -> list[EvalSetSpec]:
    """``--eval`` values: a TOML file with ``[[sets]]``, or ``NAME@VERSION:SPLIT`` shorthands."""
    specs: list[EvalSetSpec] = []
    for entry in entries:
        path = Path(entry)
        if entry.endswith(".toml"):
            data = read_toml(
                path, what="eval config", example="an eval sets file such as recipes/eval-paper.toml"
            )
            if not isinstance(data.get("sets"), list) or not data["sets"]:
                raise RecipeError(
                    f"{path}: no [[sets]] tables: not an eval sets file (see recipes/eval-paper.toml)"
                )
            for i, raw in enumerate(data.get("sets", [])):
                try:
                    specs.append(EvalSetSpec.model_validate(raw))
                except ValidationError as exc:
                    err = exc.errors()[0]
                    key = ".".join(str(p) for p in err["loc"])
                    msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
                    raise RecipeError(f"{path}: key 'sets[{i}]{'.' + key if key else ''}': {msg}") from None
        elif "@" in entry:
            ref, _, split = entry.partition(":")
            specs.append(EvalSetSpec(name=f"{ref}:{split or 'test'}", dataset=ref, split=split or "test"))
        else:
            raise RecipeError(f"--eval {entry!r}: expected a .toml file or NAME@VERSION:SPLIT")
    return specs


def _is_python(row: dict[str, str], prompt_field: str | None) -> bool:
    from dataset_builder.api import parses_as_python

    for value in row.values():
        if re.search(r"^\s*(```|~~~)\s*(python|py|python3)\b", value, re.M | re.I):
            return True
        if parses_as_python(value):
            return True
    return bool(prompt_field and re.search(r"\bpython\b", row.get(prompt_field, ""), re.I))


def _code_and_instructions(messages: list[dict[str, str]]) -> str:
    from dataset_builder.api import code_blocks

    parts = []
    for m in messages:
        if m["role"] == "user":
            parts.append(m["content"])
        elif m["role"] == "assistant":
            parts.extend(code_blocks(m["content"]))
    return "\n".join(p for p in parts if p.strip())


def resolve(
    spec: EvalSetSpec, registry: str | None, base: Path | None = None, limit: int | None = None
) -> EvalSet:
    rows: list[dict[str, Any]]
    if spec.dataset:
        import dataset_builder
        from dataset_builder.api import resolve as resolve_version

        info = resolve_version(spec.dataset, registry)
        ds = dataset_builder.load(info.ref, registry=registry)
        if spec.split not in ds:
            raise InputError(f"eval set {spec.name!r}: {info.ref} has no split {spec.split!r}")
        rows = ds[spec.split].to_list()
        source = {"dataset": info.ref, "split": spec.split, "content_hash": info.manifest["content_hash"]}
        if spec.variant == "code_and_instructions":
            texts = [_code_and_instructions(r["messages"]) for r in rows]
        else:
            texts = [spec.join.join(str(r[f]) for f in spec.fields if r.get(f)) for r in rows]
    else:
        rows = _external_rows(spec, base)
        source = {"hub_id": spec.hub_id, "hub_config": spec.hub_config, "revision": spec.revision,
                  "paths": spec.paths, "split": spec.split, "fields": spec.fields}  # fmt: skip
        if spec.filter == "without_python":
            prompt_field = spec.fields[0]
            kept = [
                r for r in rows if not _is_python({f: str(r.get(f) or "") for f in spec.fields}, prompt_field)
            ]
            source["filter"] = {"rule": "without_python", "rows_before": len(rows), "rows_after": len(kept)}
            rows = kept
        texts = [spec.join.join(str(r[f]) for f in spec.fields if r.get(f) is not None) for r in rows]
    if spec.drop_empty:
        texts = [t for t in texts if t.strip()]
    if limit is not None:
        texts = texts[:limit]
    source.update({"documents": len(texts), "variant": spec.variant})
    return EvalSet(spec.name, texts, source)


def _external_rows(spec: EvalSetSpec, base: Path | None) -> list[dict[str, Any]]:
    if spec.paths:
        from dataset_builder.api import read_records

        rows = read_records(spec.paths, base or Path.cwd())
    else:
        from trainer.hub_access import hub_offline, hub_unreachable, offline_reason, use_cache_only

        unreachable = None if hub_offline() else hub_unreachable()
        if unreachable is not None:
            # A set downloaded before is read from the datasets cache, with no retry loop first.
            use_cache_only(unreachable)
        import datasets

        try:
            rows = datasets.load_dataset(
                spec.hub_id, spec.hub_config, split=spec.split, revision=spec.revision
            ).to_list()
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if hub_offline():
                first = f"{first} (offline: {offline_reason()}, so only the datasets cache is read)"
            raise InputError(f"eval set {spec.name!r}: {spec.hub_id}: {first}") from None
    missing = [f for f in spec.fields if rows and f not in rows[0]]
    if missing:
        raise InputError(f"eval set {spec.name!r}: no field {missing[0]!r} (fields: {', '.join(rows[0])})")
    return rows

"""``dataset-builder check RECIPE``: everything a build will need, tried in seconds before it starts.

The recipe is validated; every input file is found, opened, decoded in its format and its first
records run through the source's adapter (required columns present, what share would be
rejected); Hub sources and eval sets are looked up (from the local cache when offline); the Argos
package of a translate stage is found, loaded on the requested device and compute type, and made
to translate a sentence; the translation cache must be writable; a stage that adds rows must come
before ``split``. Each problem is one line naming the file, line or key; notes say what is fine but
worth knowing (translation that will be skipped, records that will be rejected).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from dataset_builder.errors import InputError, UserError
from dataset_builder.network import check_hub_reachable, hub_offline
from dataset_builder.recipe.schema import Recipe, SourceConfig, load_recipe
from dataset_builder.sources.adapters import ADAPTERS, RowProblem
from dataset_builder.sources.readers import (
    READERS,
    detect_format,
    expand_paths,
    file_columns,
)

SAMPLE_ROWS = 100
# Stages that bring rows into the build: the split labels rows only of stages before it.
ADDS_ROWS = {"replay"}


@dataclass(frozen=True)
class Finding:
    problem: bool
    text: str


def _problem(text: str) -> Finding:
    return Finding(True, text)


def _note(text: str) -> Finding:
    return Finding(False, text)


def check_recipe(
    path: str | Path, registry_root: Path | None = None, sample_rows: int = SAMPLE_ROWS
) -> list[Finding]:
    """Every problem (and note) found in a recipe and what it reads, without building anything."""
    try:
        recipe = load_recipe(path)
    except UserError as exc:
        return [_problem(str(exc))]
    where = str(recipe.path)
    base = recipe.base_dir()
    findings: list[Finding] = []
    hub_down = _hub_down(recipe)
    if hub_down:
        findings.append(_problem(hub_down))
    for source in recipe.sources:
        if not (hub_down and source.type == "hub"):
            findings += _check_source(source, base, recipe.publish.max_row_bytes, sample_rows)
    split_at = None
    for i, entry in enumerate(recipe.stages):
        key = f"{where}: key 'stages[{i}]' ({entry.type})"
        if entry.type == "split" and split_at is None:
            split_at = i
        if entry.type in ADDS_ROWS and split_at is not None:
            findings.append(
                _problem(
                    f"{key}: comes after the split stage (stages[{split_at}]): the rows it adds would get no "
                    "split label and be rejected (no_split); move it before split"
                )
            )
        if entry.type == "decontaminate" and split_at is None and getattr(entry.config, "test_split", False):
            findings.append(
                _problem(
                    f"{key}: test_split = true but no split stage runs before it: the test split it "
                    "compares with would be empty; move it after split, or set test_split = false"
                )
            )
        findings += _check_stage(entry.type, entry.config, key, base, sample_rows, hub_down is None)
    if registry_root is not None:
        findings += _check_registry(recipe, registry_root)
    return findings


def _check_source(source: SourceConfig, base: Path, max_row_bytes: int, sample_rows: int) -> list[Finding]:
    adapter = ADAPTERS[source.adapter]
    try:
        columns = adapter.resolve_columns(source.columns)
    except ValueError as exc:
        return [_problem(f"source {source.name!r}: key 'columns': {exc}")]
    if source.type == "hub":
        label = f"hub dataset {source.hub_id}@{source.revision or 'main'} split {source.split!r}"
        found, records = _hub_records(
            label, source.hub_id or "", source.revision, source.split, source.data_files, sample_rows
        )
        if found:
            return found
        return _check_records(label, records, adapter, columns, max_row_bytes)
    try:
        files = expand_paths(source.paths, base)
    except InputError as exc:
        return [_problem(str(exc))]
    findings: list[Finding] = []
    for path in files:
        try:
            fmt = detect_format(path, source.format)
            declared = file_columns(path, fmt)
            if declared is not None and (missing := adapter.missing_required(columns, declared)):
                raise InputError(f"{path}: missing column {missing} (columns: {', '.join(sorted(declared))})")
            records = list(islice(READERS[fmt](path), sample_rows))
        except InputError as exc:
            findings.append(_problem(str(exc)))
            continue
        findings += _check_records(
            str(path),
            [(f"{path}{key}", rec, size) for key, rec, size in records],
            adapter,
            columns,
            max_row_bytes,
        )
    return findings


def _check_records(
    label: str,
    records: list[tuple[str, Any, int]],
    adapter: Any,
    columns: dict[str, tuple[str, ...]],
    max_row_bytes: int,
) -> list[Finding]:
    """Run the adapter over the first records, as the build's load step would."""
    if (
        records
        and isinstance(records[0][1], dict)
        and (missing := adapter.missing_required(columns, set(records[0][1])))
    ):
        key, first, _ = records[0]
        return [
            _problem(
                f"{key}: missing column {missing} (found: {', '.join(sorted(first))}); map it with [sources.columns]"
            )
        ]
    reasons: Counter[str] = Counter()
    for _key, record, size in records:
        if size > max_row_bytes:
            reasons["row_too_large"] += 1
        elif not isinstance(record, dict):
            reasons["not_an_object"] += 1
        else:
            try:
                adapter.to_messages(record, columns)
            except RowProblem as problem:
                reasons[problem.reason] += 1
    if not reasons:
        return []
    counts = ", ".join(f"{reason} {n}" for reason, n in reasons.most_common())
    return [
        _note(
            f"{label}: {sum(reasons.values())} of the first {len(records)} records would be rejected ({counts})"
        )
    ]


def _hub_records(
    label: str, hub_id: str, revision: str | None, split: str, data_files: list[str] | None, n: int
) -> tuple[list[Finding], list[tuple[str, Any, int]]]:
    """The first ``n`` records of a Hub dataset split: streamed when online (nothing downloaded in
    full), from the local cache when offline, as the build will read it."""
    try:
        if not hub_offline():
            check_hub_reachable()
        import datasets

        ds = datasets.load_dataset(
            hub_id, revision=revision, split=split, data_files=data_files, streaming=not hub_offline()
        )
        records = [(f"{hub_id}:{split}[{i}]", rec, 0) for i, rec in enumerate(islice(iter(ds), n))]
    except UserError as exc:
        return [_problem(str(exc))], []
    except Exception as exc:  # datasets raises many types for "cannot be read": the first line says which
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [_problem(f"{label}: {first}")], []
    if not records:
        return [_problem(f"{label}: no records")], []
    return [], records


def _hub_labels(recipe: Recipe) -> list[str]:
    """The Hub datasets a recipe reads: its sources' and its stages' (eval sets, replayed sources)."""
    labels = [f"source {s.name!r} ({s.hub_id})" for s in recipe.sources if s.type == "hub"]
    for entry in recipe.stages:
        for spec in getattr(entry.config, "eval_sets", None) or []:
            if getattr(spec, "hub_id", None):
                labels.append(f"eval set {spec.name!r} ({spec.hub_id})")
        replayed = getattr(entry.config, "source", None)
        if isinstance(replayed, SourceConfig) and replayed.type == "hub":
            labels.append(f"source {replayed.name!r} ({replayed.hub_id})")
    return labels


def _hub_down(recipe: Recipe) -> str | None:
    """One line naming every Hub dataset the recipe needs when the Hub cannot be reached (asked
    once, not once per dataset); None when it is reachable, offline mode is set, or none is needed."""
    labels = _hub_labels(recipe)
    if not labels or hub_offline():
        return None
    try:
        check_hub_reachable()
    except UserError as exc:
        head, _, way_out = str(exc).partition("; ")
        return f"{head}, needed for {', '.join(labels)}" + (f"; {way_out}" if way_out else "")
    return None


def _check_stage(
    kind: str, cfg: Any, key: str, base: Path, sample_rows: int, hub_ok: bool = True
) -> list[Finding]:
    if kind in ("translate", "mt_quality"):
        # mt_quality's back-translation is found and tried as a translation is.
        return _check_translate(cfg, key, base)
    if kind == "decontaminate":
        specs = [spec for spec in cfg.eval_sets if hub_ok or not getattr(spec, "hub_id", None)]
        return [f for spec in specs for f in _check_eval_set(spec, key, base, sample_rows)]
    if kind == "replay":
        if not hub_ok and cfg.source.type == "hub":
            return []
        return _check_source(cfg.source, base, cfg.max_row_bytes, sample_rows)
    if kind == "format" and cfg.tokenizer not in (None, "zephyr") and not Path(cfg.tokenizer).is_dir():
        return [_problem(f"{key}: tokenizer {cfg.tokenizer!r} is neither 'zephyr' nor a folder")]
    return []


def _check_eval_set(spec: Any, key: str, base: Path, sample_rows: int) -> list[Finding]:
    label = f"{key}: eval set {spec.name!r}"
    if spec.hub_id:
        found, records = _hub_records(
            label, spec.hub_id, spec.revision, spec.split, spec.data_files, sample_rows
        )
        if found:
            return found
    else:
        try:
            records = [
                rec
                for path in expand_paths(spec.paths, base)
                for rec in islice(READERS[detect_format(path, spec.format)](path), sample_rows)
            ]
        except InputError as exc:
            return [_problem(f"{label}: {exc}")]
    seen = {column for _, record, _ in records if isinstance(record, dict) for column in record}
    wanted = [*spec.columns, *([spec.id_column] if getattr(spec, "id_column", None) else [])]
    missing = [c for c in wanted if c not in seen]
    if missing:
        return [
            _problem(
                f"{label}: no column {missing[0]!r} in its first records (found: {', '.join(sorted(seen))})"
            )
        ]
    return []


def _check_translate(cfg: Any, key: str, base: Path) -> list[Finding]:
    from dataset_builder.translation import packages

    if cfg.engine.startswith("python:"):
        return _check_python_engine(cfg.engine, key, base) + _check_cache(cfg, key, base)

    try:
        package = packages.find(cfg.from_lang, cfg.to_lang, cfg.package_version, cfg.packages_dir)
    except packages.PackageError as exc:
        if cfg.if_missing == "skip":
            return [_note(f"{key}: translation will be skipped ({exc})")]
        return [_problem(f"{key}: {exc}")]
    missing = [p for p in ("model/model.bin", "sentencepiece.model") if not (package.path / p).is_file()]
    if missing:
        return [_problem(f"{key}: package {package.path} is incomplete (no {missing[0]}); install it again")]
    return _check_engine(cfg, key, package) + _check_cache(cfg, key, base)


def _check_cache(cfg: Any, key: str, base: Path) -> list[Finding]:
    if not cfg.cache:
        return []
    from dataset_builder.translation.cache import default_cache_path

    path = Path(cfg.cache_path) if cfg.cache_path else default_cache_path()
    path = path if path.is_absolute() else base / path
    return [] if _writable(path) else [_problem(f"{key}: translation cache {path} cannot be written")]


def _check_python_engine(engine: str, key: str, base: Path) -> list[Finding]:
    """Where the translator's module is; never imported here (importing runs it)."""
    from dataset_builder.translation.python_engine import TranslatorError, locate

    try:
        ref = locate(engine, base)
    except TranslatorError as exc:
        return [_problem(f"{key}: {exc}")]
    if ref.registered_by:
        return [
            _note(
                f"{key}: this recipe runs code: engine {engine!r} calls the translator {ref.module}:{ref.function} "
                f"that the installed package {ref.registered_by!r} registers"
            )
        ]
    return [
        _note(
            f"{key}: this recipe runs code: engine {engine!r} imports and calls {ref.label} "
            f"({ref.unregistered_because}); read it, then build with --trust-code"
        )
    ]


def _check_engine(cfg: Any, key: str, package: Any) -> list[Finding]:
    import ctranslate2

    from dataset_builder.translation.engine import DecodeSettings, Engine, RuntimeSettings, resolve_device

    if cfg.device == "cuda" and ctranslate2.get_cuda_device_count() == 0:
        return [_problem(f"{key}: device = 'cuda' but CTranslate2 sees no CUDA device; use 'auto' or 'cpu'")]
    device = resolve_device(cfg.device)
    supported = ctranslate2.get_supported_compute_types(device)
    if cfg.compute_type not in ("auto", "default") and cfg.compute_type not in supported:
        return [
            _problem(
                f"{key}: compute_type {cfg.compute_type!r} is not supported on {device} "
                f"(supported: {', '.join(sorted(supported))})"
            )
        ]
    try:
        engine = Engine(
            package,
            DecodeSettings(cfg.beam_size, cfg.length_penalty, cfg.max_decoding_length),
            RuntimeSettings(cfg.device, cfg.compute_type, 1, 1, cfg.batch_tokens),
        )
        engine.translate(["Hello."])
    except Exception as exc:  # CTranslate2 and SentencePiece report a broken model in their own types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [_problem(f"{key}: package {package.path} does not load or translate ({first})")]
    return [_note(f"{key}: package {package.code} {package.version} loads and translates on {device}")]


def _writable(path: Path) -> bool:
    """Whether ``path`` could be created or opened for writing, creating nothing."""
    if path.is_dir():
        return os.access(path, os.W_OK | os.X_OK)
    if path.exists():
        return path.is_file() and os.access(path, os.W_OK)
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    return parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)


def _check_registry(recipe: Recipe, root: Path) -> list[Finding]:
    from dataset_builder.publishing.identity import refuse_or_skip
    from dataset_builder.registry.store import Registry

    try:
        identical = refuse_or_skip(recipe, Registry(root))
    except UserError as exc:
        return [_problem(str(exc))]
    if (root / recipe.dataset.name / recipe.dataset.version / "manifest.json").is_file():
        same = (
            "from the same recipe, inputs and model: a build is a no-op"
            if identical
            else "a build with the same content is a no-op"
        )
        return [_note(f"{recipe.ref} is already published in {root} {same}")]
    if not _writable(root / recipe.dataset.name):
        return [_problem(f"{root}: the registry cannot be written")]
    return []

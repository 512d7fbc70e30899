"""The public Python API: :func:`dataset_builder.load` and what the trainer and evaluators use.

Everything in ``__all__`` keeps its name and behaviour; the modules behind it may move.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq

from dataset_builder.chat.templates import ZEPHYR_TEMPLATE, ChatFormat
from dataset_builder.errors import UserError, VerificationError
from dataset_builder.registry.names import LATEST, is_hub_ref, parse_hub_ref
from dataset_builder.registry.store import Registry, VersionInfo


def resolve(ref: str, registry: str | Path | None = None) -> VersionInfo:
    """The local version behind ``NAME@VERSION`` or ``ORG/NAME@VERSION`` (pulled from the Hub into
    the local registry once, every checksum verified); ``@latest`` names the newest version."""
    if not isinstance(ref, str):
        raise UserError(f"{ref!r}: expected NAME@VERSION or ORG/NAME@VERSION as a string")
    reg = Registry(registry)
    if is_hub_ref(ref):
        from dataset_builder.hub.transfer import latest_tag, local_ref, pull

        repo_id, version = parse_hub_ref(ref)
        if version == LATEST:  # only the Hub knows its newest tag
            version = latest_tag(repo_id)
        hub_ref = f"{repo_id}@{version}"
        ref = local_ref(hub_ref, reg) or pull(hub_ref, reg).ref
    return reg.get(ref)


def load_version(
    ref: str, registry: str | Path | None = None, *, verify: bool = True
) -> datasets.DatasetDict:
    """``NAME@VERSION`` from the local registry, or ``ORG/NAME@VERSION`` from the Hub (pulled into
    the local registry once, every checksum verified); ``@latest`` names the newest version."""
    reg = Registry(registry)
    ref = resolve(ref, registry).ref
    if verify:
        problems = reg.verify(ref)
        if problems:
            raise VerificationError(f"{ref}: {problems[0]} ({len(problems)} problem(s)); refusing to load")
    return datasets.DatasetDict(
        {split: datasets.Dataset(pq.read_table(path)) for split, path in reg.data_files(ref).items()}
    )


# ---- what the trainer and evaluators use besides load() ---------------------------------------
# Each name here is public: its behaviour is kept when the modules behind it move.


def code_blocks(text: str) -> list[str]:
    """The code in a chat turn (fenced, indented or bare blocks, without their fences' blank
    edges), as the translate stage finds it and keeps it byte-identical."""
    from dataset_builder.translation.segment import segment

    # Short values ("Hello World") are kept by the translate stage but are not code.
    return [span.text.strip("\n") for span in segment(text, values=False) if span.kind == "code"]


def parses_as_python(text: str) -> bool:
    """Whether ``text`` parses as Python with at least one real statement (not a lone name or
    constant): the test the translate stage uses to keep a bare code block untranslated."""
    from dataset_builder.translation.segment import is_python

    return is_python(text)


def read_records(patterns: list[str], base: Path) -> list[Any]:
    """The records of local files (``.jsonl``, ``.json``, ``.parquet``, ``.csv``, optionally
    ``.gz``) matching ``patterns`` (globs, relative to ``base``), read as a recipe's local source
    reads them; a file that cannot be read is a one-line ``dataset_builder.errors.InputError``."""
    from dataset_builder.sources.readers import READERS, detect_format, expand_paths

    files = expand_paths(patterns, base)
    return [record for path in files for _, record, _ in READERS[detect_format(path, "auto")](path)]


__all__ = [
    "ZEPHYR_TEMPLATE",
    "ChatFormat",
    "VersionInfo",
    "code_blocks",
    "load_version",
    "parses_as_python",
    "read_records",
    "resolve",
]

"""Dataset names, versions, refs and file paths: checked before they touch the file system.

A name or a path that reaches the registry from outside (a manifest, a Hub repo, a ref typed on the
command line or passed to :func:`dataset_builder.load`) is data, and possibly hostile data: a
manifest naming ``../../x`` must not put files two levels above the registry. Every entry point
turns such strings into paths through this module only, so there is one set of rules:

- names and versions match the recipe's patterns (one path component, no ``/``, no leading dot);
- a file path inside a version is relative, ``/``-separated, with no empty, ``.`` or ``..``
  component, no backslash, NUL or control character, and no leading dot in any component;
- the resolved path stays inside its root, and nothing on the way is a symbolic link.

:func:`inside` checks a path that is then read. Whatever writes, renames or deletes under the
registry does not check first and act later: :mod:`dataset_builder.registry.anchored` takes the same
relative paths (checked by :func:`check_relpath`) and walks them relative to open folders with
``O_NOFOLLOW``, so the kernel refuses a link at the moment of use.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path

from dataset_builder.errors import UserError
from dataset_builder.recipe.schema import NAME_PATTERN, NAME_RULE, VERSION_PATTERN, VERSION_RULE

LATEST = "latest"


class NotFoundError(UserError):
    """No dataset of that name in the registry (the message suggests close names)."""

    exit_code = 1


_NAME = re.compile(NAME_PATTERN)
_VERSION = re.compile(VERSION_PATTERN)
# The Hub's own rule for an owner or a repo name: letters, digits, "-", "_", "."; starts and ends
# with a letter or digit; no "--" or ".." anywhere.
_HUB_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_UNSAFE_CHARS = re.compile(r"[\\\x00-\x1f\x7f]")


def check_name(name: object, where: str) -> str:
    """``name`` if it is a valid dataset name, else a :class:`UserError` naming ``where``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UserError(f"{where}: invalid dataset name {name!r} (use {NAME_RULE})")
    return name


def check_version(version: object, where: str) -> str:
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise UserError(f"{where}: invalid version {version!r} (use {VERSION_RULE})")
    return version


def check_repo_id(repo_id: object, where: str) -> str:
    """An ``ORG/NAME`` Hub repo id."""
    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    if len(parts) != 2 or not all(_HUB_PART.fullmatch(p) and "--" not in p and ".." not in p for p in parts):
        raise UserError(f"{where}: invalid Hub repo id {repo_id!r} (expected ORG/NAME)")
    return repo_id  # type: ignore[return-value]


def is_hub_ref(ref: str) -> bool:
    """True for ``ORG/NAME@VERSION``; local names never hold a ``/``."""
    return "/" in ref.partition("@")[0]


def parse_ref(ref: object) -> tuple[str, str]:
    """``NAME@VERSION`` (VERSION may be ``latest``) -> (name, version), both checked."""
    text = ref if isinstance(ref, str) else repr(ref)
    name, at, version = text.partition("@")
    if not at or not name or not version:
        raise UserError(f"{text!r}: expected NAME@VERSION (or NAME@{LATEST})")
    return check_name(name, text), version if version == LATEST else check_version(version, text)


def parse_hub_ref(ref: object) -> tuple[str, str]:
    """``ORG/NAME@VERSION`` (VERSION may be ``latest``) -> (repo id, version), both checked."""
    text = ref if isinstance(ref, str) else repr(ref)
    repo_id, at, version = text.partition("@")
    if not at or not version:
        raise UserError(f"{text!r}: expected ORG/NAME@VERSION (or ORG/NAME@{LATEST})")
    return check_repo_id(repo_id, text), version if version == LATEST else check_version(version, text)


def check_relpath(rel: object, where: str, *, allow_hidden: bool = False) -> str:
    """A file path inside a version, as a manifest lists it. A Hub repo's own listing may hold
    hidden files (``.gitattributes``), which are never part of a version: ``allow_hidden``."""
    if not isinstance(rel, str) or not rel:
        raise UserError(f"{where}: invalid file path {rel!r}")
    if _UNSAFE_CHARS.search(rel):
        raise UserError(f"{where}: file path {rel!r} holds a backslash or a control character")
    if rel.startswith("/") or re.match(r"^[A-Za-z]:", rel):
        raise UserError(f"{where}: file path {rel!r} is absolute")
    for part in rel.split("/"):
        if part in ("", ".", ".."):
            raise UserError(f"{where}: file path {rel!r} has an empty, '.' or '..' component")
        if part.startswith(".") and not allow_hidden:
            raise UserError(f"{where}: file path {rel!r} has a hidden component {part!r}")
    return rel


def inside(root: Path, rel: str, where: str) -> Path:
    """``root / rel`` after checking ``rel``, to read; refused if the result resolves outside
    ``root`` or if anything between ``root`` and the file (the file included) is a symbolic link.
    Never a path to write, rename or delete: see :mod:`dataset_builder.registry.anchored`."""
    check_relpath(rel, where)
    path = root
    for part in rel.split("/"):
        path = path / part
        if path.is_symlink():
            raise UserError(f"{where}: {rel!r} goes through a symbolic link ({path})")
    if not path.resolve().is_relative_to(root.resolve()):
        raise UserError(f"{where}: {rel!r} resolves outside {root}")
    return path


def suggest(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean: a, b?)`` for close matches, else an empty string."""
    close = difflib.get_close_matches(word, list(candidates), n=3, cutoff=0.6)
    return f" (did you mean: {', '.join(close)}?)" if close else ""

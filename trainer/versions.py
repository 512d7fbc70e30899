"""Installed versions of the libraries a run depends on, as its records and ``--version`` show them."""

from __future__ import annotations


def installed(names: tuple[str, ...]) -> dict[str, str | None]:
    """Each named distribution's installed version, None for one that is not installed (read from
    package metadata: nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out

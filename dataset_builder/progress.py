"""Progress bars for long work: rate and ETA on a terminal, silent when output is not a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def new_bar(*, desc: str, unit: str, total: int | None = None, enabled: bool = True) -> Any:
    """A tqdm bar (the caller closes it); for work whose total grows as it streams in."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        dynamic_ncols=True,
        file=sys.stderr,
        # None: show on a terminal, stay quiet in logs and pipes.
        disable=None if enabled else True,
    )


@contextmanager
def progress(*, desc: str, unit: str, total: int | None = None, enabled: bool = True) -> Iterator[Any]:
    bar = new_bar(desc=desc, unit=unit, total=total, enabled=enabled)
    try:
        yield bar
    finally:
        bar.close()

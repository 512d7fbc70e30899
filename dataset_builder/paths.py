"""Where the toolkit keeps things on a user's machine: an explicit path wins, then an environment
variable, then a folder under the user's data or cache directory."""

from __future__ import annotations

import os
from pathlib import Path

DATA_HOME = Path.home() / ".local" / "share" / "dataset-builder"
CACHE_HOME = Path.home() / ".cache" / "dataset-builder"


def user_path(explicit: str | Path | None, env: str, default: Path) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    return default

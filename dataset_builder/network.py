"""Which Hub the toolkit talks to, whether it may go online at all, and a quick reachability probe.

The probe fails in seconds with the server's name; without it a client's retry loop spends half a
minute before failing with a traceback. (The trainer keeps its own probe, ``trainer/hub_access.py``:
models are fetched by transformers and peft, whose offline switches and proxies it follows.)
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from dataset_builder.errors import InputError


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def check_host_reachable(endpoint: str, what: str, hint: str = "", timeout: float = 5.0) -> None:
    """Fail in seconds, not after a client's retry loop, when a server cannot be reached."""
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as exc:
        raise InputError(
            f"{endpoint}: {what} is unreachable ({exc.__class__.__name__}: {exc}){hint}"
        ) from None


def check_hub_reachable(timeout: float = 5.0) -> None:
    check_host_reachable(
        hub_endpoint(),
        "Hub",
        "; use a local copy of the data (type = 'local') or set HF_HUB_OFFLINE=1 to use the cache",
        timeout,
    )

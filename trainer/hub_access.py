"""Whether the Hugging Face Hub may be asked and can be reached, found in seconds.

transformers, peft, datasets and lm-evaluation-harness retry for tens of seconds when the Hub is
unreachable. The probe here answers within ``PROBE_SECONDS``; when it fails, the process switches
to the cache only, so no library starts its retry loop.

dataset_builder's ``network.py`` answers the same question for building and publishing data; this
one is the trainer's because models are fetched by other libraries: it also honours
``TRANSFORMERS_OFFLINE``, goes through a configured proxy as they do, and switches them to the cache.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import urllib.request
from functools import cache
from urllib.parse import urlparse

PROBE_SECONDS = 3.0


def hub_offline() -> bool:
    """The user asked for no network (the variables transformers and huggingface_hub honour)."""
    return any(
        os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _probe_target(endpoint: str) -> tuple[str, int, str]:
    """Host and port a request to ``endpoint`` would connect to first: its proxy when one applies."""
    url = urlparse(endpoint)
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(url.hostname or ""):
        p = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        return p.hostname or "", p.port or (443 if p.scheme == "https" else 80), f" through proxy {proxy}"
    return url.hostname or "", url.port or (443 if url.scheme == "https" else 80), ""


@cache
def hub_unreachable(timeout: float = PROBE_SECONDS) -> str | None:
    """Why the Hub cannot be reached, or None when a TCP connection to it opens within ``timeout``.

    The connection is tried in a thread so a resolver that hangs cannot hold the command longer
    than ``timeout`` either."""
    host, port, via = _probe_target(hub_endpoint())
    outcome: list[OSError | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        return f"no answer from {host}:{port}{via} within {timeout:g} s"
    exc = outcome[0]
    if exc is None:
        return None
    return f"{host}:{port}{via}: {exc.strerror or exc}"


_switched: list[str] = []  # why this process went offline on its own, when it did


def use_cache_only(reason: str) -> None:
    """Offline from here on, for every library of this process, as if HF_HUB_OFFLINE=1 had been set."""
    _switched.append(reason)
    os.environ["HF_HUB_OFFLINE"] = "1"
    import huggingface_hub.constants

    huggingface_hub.constants.HF_HUB_OFFLINE = True
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        datasets_config.HF_HUB_OFFLINE = True


def went_offline() -> bool:
    """Whether this process switched to the cache only because the Hub was unreachable."""
    return bool(_switched)


def offline_reason() -> str:
    """Why the Hub is not asked: the user's setting, or an unreachable Hub found by the probe."""
    if _switched:
        return f"the Hub {hub_endpoint()} is unreachable ({_switched[0]})"
    return "HF_HUB_OFFLINE is set"

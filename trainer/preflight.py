"""Finding models and adapters before anything loads.

transformers and peft resolve a name by asking the Hub, retrying for tens of seconds when it is
unreachable and ending in a long traceback. Here a name is found, in well under a second, as a
local folder, a copy in the Hugging Face cache, or a repo on a Hub that answers; anything else is
one line naming it. When the Hub cannot be reached but the cache holds the model, the process
switches to the cache only (:mod:`trainer.hub_access`), so the libraries never start their retry
loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dataset_builder.errors import UserError
from trainer.hub_access import (
    hub_endpoint,
    hub_offline,
    hub_unreachable,
    offline_reason,
    use_cache_only,
    went_offline,
)

MODEL_FILE = "config.json"
ADAPTER_FILE = "adapter_config.json"
WEIGHTS = {
    "model": (
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
    ),
    "adapter": ("adapter_model.safetensors", "adapter_model.bin"),
}


@dataclass(frozen=True)
class Located:
    ref: str  # what to hand to from_pretrained
    where: Literal["folder", "cache", "hub"]


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _looks_like_path(ref: str) -> bool:
    return ref.startswith(("/", ".", "~")) or "\\" in ref or ref.count("/") > 1 or ref.endswith("/")


def _in_cache(repo_id: str, filename: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, filename), str)


def locate(ref: str, option: str, kind: Literal["model", "adapter"]) -> Located:
    """Where ``ref`` (the value of ``option``) will be loaded from; a one-line error when nowhere."""
    marker = ADAPTER_FILE if kind == "adapter" else MODEL_FILE
    what = f"{option} {ref}"
    path = Path(ref).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"{what}: not a folder ({_a(kind)} is a folder with {marker})")
        if not (path / marker).is_file():
            hint = " (a base model's folder? an adapter has adapter_config.json)" if kind == "adapter" else ""
            raise UserError(f"{what}: no {marker} in this folder, so it is not {_a(kind)}{hint}")
        if not any((path / name).is_file() for name in WEIGHTS[kind]):
            raise UserError(f"{what}: no weights in this folder ({' or '.join(WEIGHTS[kind])})")
        return Located(str(path), "folder")
    if _looks_like_path(ref):
        raise UserError(f"{what}: no such folder")

    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(ref)
    except HFValidationError:
        raise UserError(f"{what}: no such folder, and not a Hub repo id (ORG/NAME)") from None
    if _in_cache(ref, marker):
        reason = None if hub_offline() else hub_unreachable()
        if reason is not None:
            use_cache_only(reason)
        return Located(ref, "cache")
    if hub_offline():
        if went_offline():
            raise UserError(
                f"{what}: no such folder and not in the Hugging Face cache, and {offline_reason()}"
            )
        raise UserError(
            f"{what}: no such folder and not in the Hugging Face cache; HF_HUB_OFFLINE is set, so it "
            f"cannot be downloaded (unset it on a machine with a network, or give a local folder)"
        )
    reason = hub_unreachable()
    if reason is not None:
        raise UserError(
            f"{what}: no such folder and not in the Hugging Face cache, and the Hub {hub_endpoint()} "
            f"is unreachable ({reason})"
        )
    _check_on_hub(ref, what, kind, marker)
    return Located(ref, "hub")


def _check_on_hub(repo_id: str, what: str, kind: str, marker: str) -> None:
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError

    url = f"{hub_endpoint()}/{repo_id}"
    try:
        info = HfApi(endpoint=hub_endpoint()).model_info(repo_id, timeout=10)
    except GatedRepoError:
        raise UserError(f"{what}: gated on the Hub; accept its conditions at {url} and log in") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403, 404):
            raise UserError(
                f"{what}: no such {kind} on the Hub {hub_endpoint()} (if it is private: "
                "`hf auth login` or HF_TOKEN)"
            ) from None
        raise UserError(f"{what}: the Hub answered {status}: {str(exc).strip().splitlines()[0]}") from None
    except OSError as exc:  # the connection dropped after the probe
        raise UserError(f"{what}: the Hub {hub_endpoint()} stopped answering ({exc})") from None
    files = {s.rfilename for s in info.siblings or []}
    if files and marker not in files:
        raise UserError(f"{what}: the Hub repo has no {marker}, so it is not {_a(kind)}")
    if info.gated and get_token() is None:
        raise UserError(f"{what}: gated on the Hub; accept its conditions at {url} and log in")


@contextmanager
def loading(option: str, ref: str) -> Iterator[None]:
    """A model or adapter that was found but cannot be used fails in one line, like the checks
    before it: files that cannot be read (a download cut off, a corrupt or missing shard) or that
    do not fit (an adapter trained on another base: shapes differ). ``--debug`` shows the cause."""
    from safetensors import SafetensorError

    try:
        yield
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        text = str(exc).strip()
        if "size mismatch" in text:
            first = "its weights do not fit the base model's shapes (trained on another base?)"
        else:
            first = text.splitlines()[0] if text else type(exc).__name__
        raise UserError(f"{option} {ref}: cannot be loaded: {first}") from exc

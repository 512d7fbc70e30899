"""Versions on the Hugging Face Hub: push a local version as one commit tagged with its version,
pull a tagged version back into the local registry with every checksum verified.

The commit carries the version's Parquet files, card and manifest; the tag is created only after
the commit has landed, so a tag never points at an incomplete upload. Tags are immutable like local
versions: pushing different content under an existing tag is refused. The token comes from
``HF_TOKEN`` or ``huggingface-cli login`` through ``huggingface_hub``; it is never logged or written.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from dataset_builder.errors import PublishError, UserError, VerificationError
from dataset_builder.registry import MANIFEST, Registry, VersionInfo
from dataset_builder.sources.readers import check_hub_reachable, hub_endpoint, hub_offline

log = logging.getLogger("dataset_builder")
T = TypeVar("T")
_HUB_REF = re.compile(r"^(?P<repo>[\w.\-]+/[\w.\-]+)@(?P<version>[^@\s]+)$")


def parse_hub_ref(ref: str) -> tuple[str, str]:
    match = _HUB_REF.match(ref)
    if not match:
        raise UserError(f"{ref!r}: expected ORG/NAME@VERSION")
    return match["repo"], match["version"]


def _retry(what: str, func: Callable[[], T], attempts: int = 4, delay: float = 1.0) -> T:
    from huggingface_hub.errors import HfHubHTTPError

    for attempt in range(1, attempts + 1):
        try:
            return func()
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if (status and status < 500 and status != 429) or attempt == attempts:
                raise PublishError(f"{what}: {str(exc).splitlines()[0]}") from None
            log.warning("%s failed (%s), retrying in %.0f s (%d/%d)", what, status, delay, attempt, attempts)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def _api():  # -> HfApi
    if hub_offline():
        raise UserError("HF_HUB_OFFLINE is set: the Hub cannot be reached")
    check_hub_reachable()
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub_endpoint())


def push(info: VersionInfo, repo_id: str, *, private: bool = False, retry_delay: float = 1.0) -> str:
    """Upload a local version to ``repo_id`` and tag it ``info.version``. Returns the commit id."""
    api = _api()
    version = info.version
    content_hash = info.manifest["content_hash"]
    _retry(f"create {repo_id}", lambda: api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True),
           delay=retry_delay)  # fmt: skip
    refs = _retry(
        f"list refs of {repo_id}", lambda: api.list_repo_refs(repo_id, repo_type="dataset"), delay=retry_delay
    )
    existing = {t.name: t.target_commit for t in refs.tags}
    if version in existing:
        remote = _remote_manifest(api, repo_id, version)
        if remote.get("content_hash") == content_hash:
            log.info("%s@%s is already on the Hub with identical content", repo_id, version)
            return existing[version]
        raise PublishError(
            f"{repo_id}@{version}: the Hub already has this version with different content "
            f"({remote.get('content_hash')} != {content_hash}); versions are immutable"
        )
    files = sorted([*info.manifest["files"], MANIFEST])
    commit = _retry(
        f"upload {info.ref} to {repo_id}",
        lambda: api.upload_folder(
            folder_path=str(info.path),
            repo_id=repo_id,
            repo_type="dataset",
            allow_patterns=files,
            commit_message=f"{info.name} {version}",
            commit_description=f"content hash {content_hash}",
        ),
        delay=retry_delay,
    )
    _retry(
        f"tag {repo_id}@{version}",
        lambda: api.create_tag(repo_id, tag=version, revision=commit.oid, repo_type="dataset",
                               tag_message=f"{info.name} {version} {content_hash}"),
        delay=retry_delay,
    )  # fmt: skip
    return commit.oid


def _remote_manifest(api, repo_id: str, revision: str) -> dict:
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(repo_id, MANIFEST, repo_type="dataset", revision=revision, endpoint=api.endpoint)
    return json.loads(Path(path).read_text(encoding="utf-8"))


_HUB_INDEX = ".hub-refs.json"


def _remember(registry: Registry, hub_ref: str, local: str) -> None:
    path = registry.root / _HUB_INDEX
    index = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    index[hub_ref] = local
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(index, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def local_ref(hub_ref: str, registry: Registry) -> str | None:
    """The local ``NAME@VERSION`` an ``ORG/NAME@VERSION`` was pulled into, if it was."""
    path = registry.root / _HUB_INDEX
    index = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    local = index.get(hub_ref)
    return local if local and registry.exists(*local.split("@", 1)) else None


def pull(ref: str, registry: Registry) -> VersionInfo:
    """Download ``ORG/NAME@VERSION`` into the local registry, verifying every file's sha256."""
    repo_id, version = parse_hub_ref(ref)
    api = _api()
    from huggingface_hub import snapshot_download

    parent = registry.root / ".downloads"
    parent.mkdir(parents=True, exist_ok=True)
    work = parent / f"{repo_id.replace('/', '--')}--{version}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        _retry(
            f"download {ref}",
            lambda: snapshot_download(repo_id, repo_type="dataset", revision=version, local_dir=str(work),
                                      endpoint=api.endpoint),
        )  # fmt: skip
        manifest_path = work / MANIFEST
        if not manifest_path.is_file():
            raise VerificationError(
                f"{ref}: no {MANIFEST} in the repo at {version}: not a dataset-builder version"
            )
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("version") != version:
            raise VerificationError(f"{ref}: manifest says version {manifest.get('version')!r}")
        shutil.rmtree(work / ".cache", ignore_errors=True)
        from dataset_builder.sources.readers import file_sha256

        for rel, meta in manifest["files"].items():
            path = work / rel
            if not path.is_file():
                raise VerificationError(f"{ref}: {rel} is in the manifest but not in the repo")
            if file_sha256(path) != meta["sha256"]:
                raise VerificationError(f"{ref}: {rel} does not match its sha256 in the manifest")
        for path in sorted(work.rglob("*")):
            rel = path.relative_to(work).as_posix()
            if path.is_file() and rel not in manifest["files"] and rel != MANIFEST:
                path.unlink()  # e.g. the repo's .gitattributes: not part of the version
        name = manifest["name"]
        with registry.staging(name, version) as staging:
            shutil.rmtree(staging)
            shutil.move(str(work), str(staging))
            registry.publish(staging, name, version, manifest["content_hash"])
        _remember(registry, ref, f"{name}@{version}")
        return registry.get(f"{name}@{version}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

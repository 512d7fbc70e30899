"""Versions on the Hugging Face Hub: push a local version as one commit tagged with its version,
pull a tagged version back into the local registry with every checksum verified.

The commit carries the version's Parquet files, card and manifest, and deletes every other file of
the repo (``.gitattributes`` aside), so a tag holds exactly its version; the tag is created only
after the commit has landed, so a tag never points at an incomplete upload. Tags are immutable like
local versions: pushing different content under an existing tag is refused. The token comes from
``HF_TOKEN`` or ``huggingface-cli login`` through ``huggingface_hub``; it is never logged or written.

A pulled repo is untrusted input: its file list, the manifest's name, version and file paths are
checked by :mod:`dataset_builder.registry.names`; only the files the manifest lists are downloaded, into a
staging folder inside the registry, verified, then renamed into place.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from dataset_builder.errors import PublishError, UserError, VerificationError
from dataset_builder.hub.hub_card import card_for_hub, restore_built_card
from dataset_builder.network import check_host_reachable, hub_endpoint, hub_offline
from dataset_builder.publishing.card import CARD
from dataset_builder.registry.anchored import Folder
from dataset_builder.registry.names import (
    LATEST,
    check_name,
    check_relpath,
    inside,
    parse_hub_ref,
    parse_ref,
)
from dataset_builder.registry.store import (
    MANIFEST,
    Registry,
    VersionInfo,
    check_manifest,
    is_trial,
    version_key,
)

log = logging.getLogger("dataset_builder")
T = TypeVar("T")
# Files a Hub repo holds for itself, never part of a version: kept by push, skipped by pull.
_REPO_FILES = frozenset({".gitattributes"})

__all__ = ["latest_tag", "local_ref", "naming_note", "parse_hub_ref", "pull", "push"]


def _retry(what: str, func: Callable[[], T], attempts: int = 4, delay: float = 1.0) -> T:
    from huggingface_hub.errors import HfHubHTTPError

    for attempt in range(1, attempts + 1):
        try:
            return func()
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status == 412:  # the commit named a parent that is no longer the branch head
                raise PublishError(
                    f"{what}: the repo changed while this push was under way (another push?); "
                    "nothing was committed or tagged: push again"
                ) from None
            if (status and status < 500 and status != 429) or attempt == attempts:
                raise PublishError(f"{what}: {str(exc).splitlines()[0]}") from None
            log.warning("%s failed (%s), retrying in %.0f s (%d/%d)", what, status, delay, attempt, attempts)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def _api():  # -> HfApi
    if hub_offline():
        raise UserError(
            "HF_HUB_OFFLINE is set: push and pull need the Hub; unset it, or set HF_ENDPOINT to a "
            "Hub-compatible server (docs/cli.md, 'Push and pull without the Hub')"
        )
    check_host_reachable(
        hub_endpoint(),
        "Hub",
        "; push and pull need a network, or HF_ENDPOINT naming a Hub-compatible server "
        "(docs/cli.md, 'Push and pull without the Hub')",
    )
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub_endpoint())


def push(info: VersionInfo, repo_id: str, *, private: bool = False, retry_delay: float = 1.0) -> str:
    """Upload a local version to ``repo_id`` and tag it ``info.version``. Returns the commit id.

    The commit replaces the repo's files with exactly the version's: files of an earlier version
    that this one lacks (a split it does not have) are deleted in the same commit."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    api = _api()
    repo_id = parse_hub_ref(f"{repo_id}@{info.version}")[0]
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
            f"({remote.get('content_hash')} != {content_hash}); versions are immutable: build it as a new "
            "version with `dataset-builder build RECIPE --set-version NEW` and push that"
        )
    head = next((b.target_commit for b in refs.branches if b.name == "main"), None)
    remote_files = (
        _retry(
            f"list files of {repo_id}",
            lambda: api.list_repo_files(repo_id, repo_type="dataset", revision=head),
            delay=retry_delay,
        )
        if head
        else []
    )
    files = sorted([*info.manifest["files"], MANIFEST])
    operations: list[Any] = [
        CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(inside(info.path, rel, info.ref)))
        for rel in files
    ]
    # The uploaded card also says how to load the version from this repo; the registry's copy,
    # hashed in the manifest, stays as built (pull undoes the insertion).
    operations = [
        CommitOperationAdd(path_in_repo=CARD, path_or_fileobj=card_for_hub(Path(op.path_or_fileobj), repo_id, version))
        if op.path_in_repo == CARD else op
        for op in operations
    ]  # fmt: skip
    stale = sorted(set(remote_files) - set(files) - _REPO_FILES)
    operations += [CommitOperationDelete(path_in_repo=rel, is_folder=False) for rel in stale]
    commit = _retry(
        f"upload {info.ref} to {repo_id}",
        lambda: api.create_commit(
            repo_id,
            operations,
            repo_type="dataset",
            commit_message=f"{info.name} {version}",
            commit_description=f"content hash {content_hash}"
            + (f"; removes {len(stale)} file(s) not in this version" if stale else ""),
            # The commit lands only on the head the deletions were computed from: a push racing this
            # one fails instead of leaving the other's files in this version.
            parent_commit=head,
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

    path = _retry(
        f"download {repo_id}@{revision} {MANIFEST}",
        lambda: hf_hub_download(
            repo_id, MANIFEST, repo_type="dataset", revision=revision, endpoint=api.endpoint
        ),
    )
    try:
        manifest = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        manifest = None
    # Whatever the tag holds, it is compared by content hash only: no manifest, no hash, no match.
    return manifest if isinstance(manifest, dict) else {}


def latest_tag(repo_id: str) -> str:
    """The newest version tag of a Hub repo (trial versions made with ``--limit`` left out)."""
    api = _api()
    refs = _retry(f"list refs of {repo_id}", lambda: api.list_repo_refs(repo_id, repo_type="dataset"))
    tags = [t.name for t in refs.tags if _is_version(t.name) and not is_trial(t.name)]
    if not tags:
        raise PublishError(f"{repo_id}@{LATEST}: the repo has no version tags")
    return max(tags, key=version_key)


def _is_version(text: str) -> bool:
    try:
        parse_ref(f"x@{text}")
    except UserError:
        return False
    return text != LATEST


_HUB_INDEX = ".hub-refs.json"


def _read_index(registry: Registry) -> dict[str, str]:
    try:
        with Folder.open_root(registry.root) as root:
            index = json.loads(root.read_bytes(_HUB_INDEX).decode("utf-8"))
    except (OSError, UserError, UnicodeDecodeError, json.JSONDecodeError):
        return {}  # only a cache of earlier pulls: missing, a link or unreadable means pull again
    return index if isinstance(index, dict) else {}


def _remember(registry: Registry, hub_ref: str, local: str) -> None:
    index = _read_index(registry)
    index[hub_ref] = local
    with Folder.open_root(registry.root, create=True) as root:
        root.write_bytes(_HUB_INDEX, json.dumps(index, indent=2, sort_keys=True).encode("utf-8"))


def local_ref(hub_ref: str, registry: Registry) -> str | None:
    """The local ``NAME@VERSION`` an ``ORG/NAME@VERSION`` was pulled into, if it was."""
    local = _read_index(registry).get(hub_ref)
    try:
        return local if isinstance(local, str) and registry.exists(*parse_ref(local)) else None
    except UserError:
        return None


def _untrusted(hub_ref: str, check: Callable[[], T]) -> T:
    """Run a check on data from the Hub; its failure reads as a verification error."""
    try:
        return check()
    except VerificationError:
        raise
    except UserError as exc:
        raise VerificationError(f"{hub_ref}: {exc}") from None


def _check_manifest(manifest: Any, hub_ref: str, version: str) -> tuple[str, dict[str, str]]:
    """The dataset name and ``{path: sha256}`` of a downloaded manifest, every field checked."""
    files = check_manifest(manifest, f"{hub_ref}: {MANIFEST}")
    if manifest["version"] != version:
        raise VerificationError(
            f"{hub_ref}: {MANIFEST} says version {manifest['version']!r}, the tag is {version!r}"
        )
    return manifest["name"], files


def repo_name(repo_id: str) -> str:
    return repo_id.rpartition("/")[2]


def naming_note(repo_id: str, info: VersionInfo) -> str | None:
    """What to say when ``info`` is pushed to a repo named differently from the dataset: a pull
    publishes under the repo's name only, so pulling it back needs ``--as``."""
    if repo_name(repo_id) == info.name:
        return None
    return (
        f"note: {repo_id} is not named {info.name}; pull it back with "
        f"`dataset-builder pull {repo_id}@{info.version} --as {info.name}`"
    )


def _local_name(manifest_name: str, repo_id: str, hub_ref: str, as_name: str | None) -> str:
    """The name a pulled version is published under: ``as_name`` if given, else the manifest's
    name, which must then be the repo's (a repo may not add versions to another dataset)."""
    if as_name is not None:
        return check_name(as_name, "--as")
    if manifest_name != repo_name(repo_id):
        raise PublishError(
            f"{hub_ref}: its {MANIFEST} names the dataset {manifest_name!r}, not {repo_name(repo_id)!r} "
            f"(the repo's name); to publish it, name it: pull {hub_ref} --as {manifest_name} (or --as NAME)"
        )
    return manifest_name


def pull(ref: str, registry: Registry, *, as_name: str | None = None) -> VersionInfo:
    """Download ``ORG/NAME@VERSION`` (or ``@latest``) into the local registry, verifying every file.

    The version is published as ``NAME@VERSION`` when its manifest names the dataset ``NAME`` (the
    repo's name); otherwise only under the name ``as_name`` gives (the manifest's copy in the
    registry then says that name, and ``pulled_from`` the repo, commit and name it came with)."""
    repo_id, version = parse_hub_ref(ref)
    if as_name is not None:
        check_name(as_name, "--as")
    if version == LATEST:
        version = latest_tag(repo_id)
    hub_ref = f"{repo_id}@{version}"
    api = _api()
    from huggingface_hub import hf_hub_download

    # Everything below reads one commit, so a tag moved mid-pull cannot mix two versions' files.
    try:
        commit = _retry(f"resolve {hub_ref}", lambda: api.dataset_info(repo_id, revision=version).sha)
    except PublishError as exc:
        raise PublishError(_not_found(api, repo_id, version) or str(exc)) from None
    listing = _retry(
        f"list files of {hub_ref}",
        lambda: api.list_repo_files(repo_id, repo_type="dataset", revision=commit),
    )
    for rel in listing:
        _untrusted(hub_ref, lambda rel=rel: check_relpath(rel, "repo file", allow_hidden=True))
    if MANIFEST not in listing:
        raise VerificationError(f"{hub_ref}: no {MANIFEST} in the repo: not a dataset-builder version")

    def download(rel: str, folder: Path) -> Path:
        _retry(
            f"download {hub_ref} {rel}",
            lambda: hf_hub_download(repo_id, rel, repo_type="dataset", revision=commit,
                                    local_dir=str(folder), endpoint=api.endpoint),
        )  # fmt: skip
        return _untrusted(hub_ref, lambda: inside(folder, rel, "downloaded file"))

    # huggingface_hub writes by path (it resolves the folder it is given once, then writes below
    # it), so it downloads into a private temporary folder, never into the registry; each file
    # is then copied into the staging folder through open folders, and its copy is what is hashed.
    with tempfile.TemporaryDirectory(prefix="dataset-builder-pull-") as tmp:
        work = Path(tmp)
        raw = download(MANIFEST, work).read_bytes()
        try:
            manifest = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise VerificationError(f"{hub_ref}: {MANIFEST} is not JSON ({exc})") from None
        pulled_name, files = _check_manifest(manifest, hub_ref, version)
        name = _local_name(pulled_name, repo_id, hub_ref, as_name)
        if name != pulled_name:
            manifest = {
                **manifest,
                "name": name,
                "pulled_from": {"repo": repo_id, "commit": commit, "name": pulled_name},
            }
            raw = (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
        local = f"{name}@{version}"
        if registry.exists(name, version):  # decided without downloading: versions are immutable
            registry.publish_check(
                name, version, manifest["content_hash"], f"pull {hub_ref} into another registry"
            )
            _remember(registry, hub_ref, local)
            return registry.get(local)
        missing = sorted(set(files) - set(listing))
        if missing:
            raise VerificationError(f"{hub_ref}: {missing[0]} is in the manifest but not in the repo")
        ignored = sorted(set(listing) - set(files) - {MANIFEST} - _REPO_FILES)
        if ignored:
            log.warning("%s: not downloading %d file(s) not in the manifest: %s", hub_ref, len(ignored),
                        ", ".join(ignored[:5]) + (" ..." if len(ignored) > 5 else ""))  # fmt: skip

        with registry.staging(name, version) as staging:
            folder = registry.staged_folder(staging)
            folder.write_bytes(MANIFEST, raw)
            for rel, sha256 in sorted(files.items()):
                path = download(rel, work / "files")
                if rel == CARD:
                    restore_built_card(path)
                if folder.copy_in(rel, path, f"{hub_ref} {MANIFEST} key files") != sha256:
                    raise VerificationError(f"{hub_ref}: {rel} does not match its sha256 in the manifest")
            _check_only(staging, {*files, MANIFEST}, hub_ref)
            registry.publish(staging, name, version, manifest["content_hash"])
    _remember(registry, hub_ref, local)
    return registry.get(local)


def _not_found(api, repo_id: str, version: str) -> str | None:
    """What is missing when a version cannot be resolved: the repo, or the tag (naming the tags
    there are); None when the repo answers neither question."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        refs = api.list_repo_refs(repo_id, repo_type="dataset")
    except HfHubHTTPError as exc:
        if exc.response is not None and exc.response.status_code in (401, 404):
            return (
                f"{repo_id}@{version}: no dataset repo {repo_id} on {api.endpoint} (a private one needs "
                "a token: `hf auth login` or HF_TOKEN)"
            )
        return None
    tags = sorted((t.name for t in refs.tags if _is_version(t.name)), key=version_key)
    shown = (
        f"its version tags: {', '.join(tags)}"
        if tags
        else "it has no version tags (`dataset-builder push` makes one)"
    )
    return f"{repo_id}@{version}: {repo_id} has no tag {version!r}; {shown}"


def _check_only(folder: Path, expected: set[str], hub_ref: str) -> None:
    """The folder holds the expected files, as plain files, and nothing else."""
    for dirpath, dirnames, filenames in os.walk(folder):
        for entry in [*dirnames, *filenames]:
            path = Path(dirpath) / entry
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink() or (path.is_file() and rel not in expected):
                raise VerificationError(f"{hub_ref}: {rel} is not a file of the version; nothing published")

"""Hostile Hub repos, served over real HTTP by the local Hub: whatever a repo holds or its manifest
claims, a pull writes nothing outside the registry, publishes nothing, and fails with one line.

Each case starts from the real files of the sample version and changes one thing, so the only
reason a pull can fail is the planted problem.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hub_server import HubServer, Repo

from dataset_builder.registry.store import Registry

REF = "python-ru-sample@0.1.0"
TRAIN = "data/train-00000-of-00001.parquet"
Files = dict[str, bytes]


@pytest.fixture
def hub(tmp_path: Path):
    with HubServer() as server:
        env = server.client_env(tmp_path)
        yield server, env


def _serve(server: HubServer, repo_id: str, tag: str, files: Files) -> None:
    """Put ``files`` (any paths at all) in ``repo_id`` as one commit tagged ``tag``."""
    repo = Repo()
    oid = hashlib.sha1(f"{repo_id} {tag} {time.time()}".encode()).hexdigest()
    repo.commits[oid] = {".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n", **files}
    repo.lfs_paths[oid] = {p for p in files if p.endswith((".parquet", ".png"))}
    repo.branches["main"] = oid
    repo.tags[tag] = oid
    server.state.repos[repo_id] = repo


def _sample_files(registry: Registry) -> Files:
    info = registry.get(REF)
    files = {rel: (info.path / rel).read_bytes() for rel in info.manifest["files"]}
    files["manifest.json"] = (info.path / "manifest.json").read_bytes()
    return files


def _edit_manifest(files: Files, change: Callable[[dict], None]) -> Files:
    manifest = json.loads(files["manifest.json"])
    change(manifest)
    return {**files, "manifest.json": json.dumps(manifest).encode()}


def _snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root``: a file by its sha256, a link by its target, a folder as such."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = f"link -> {os.readlink(path)}"
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = "folder"
    return out


def _outside(snapshot: dict[str, str], registry_rel: str) -> dict[str, str]:
    return {k: v for k, v in snapshot.items() if k != registry_rel and not k.startswith(registry_rel + "/")}


def _files_in(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink())


def _run(env: dict, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=300)


def _assert_one_line_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert fragment in lines[0], lines[0]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hostile_name(m: dict) -> None:
    m["name"] = "../../escaped"  # what the unchecked pull used to write two levels up


CASES: dict[str, tuple[Callable[[Files, Path], Files], str]] = {
    "manifest name with ..": (
        lambda f, tmp: _edit_manifest(f, _hostile_name),
        "invalid dataset name '../../escaped'",
    ),
    "manifest name an absolute path": (
        lambda f, tmp: _edit_manifest(f, lambda m: m.update(name=str(tmp / "escaped-abs"))),
        "invalid dataset name",
    ),
    "repo file with ..": (
        lambda f, tmp: {**f, "../../escaped.txt": b"payload"},
        "'../../escaped.txt' has an empty, '.' or '..' component",
    ),
    "repo file with an absolute path": (
        lambda f, tmp: {**f, str(tmp / "escaped.txt"): b"payload"},
        "is absolute",
    ),
    "manifest file with ..": (
        lambda f, tmp: _edit_manifest(
            f, lambda m: m["files"].update({"../../escaped.parquet": {"sha256": _sha(f[TRAIN])}})
        ),
        "'../../escaped.parquet' has an empty, '.' or '..' component",
    ),
    "manifest file with an absolute path": (
        lambda f, tmp: _edit_manifest(
            f, lambda m: m["files"].update({str(tmp / "abs.parquet"): {"sha256": _sha(f[TRAIN])}})
        ),
        "is absolute",
    ),
    "manifest file with backslashes": (
        lambda f, tmp: _edit_manifest(
            f, lambda m: m["files"].update({"data\\..\\..\\escaped.parquet": {"sha256": _sha(f[TRAIN])}})
        ),
        "backslash",
    ),
    "manifest file with a NUL": (
        lambda f, tmp: _edit_manifest(
            f, lambda m: m["files"].update({"data/x\x00.parquet": {"sha256": "0"}})
        ),
        "control character",
    ),
    "split file outside the version": (
        lambda f, tmp: _edit_manifest(
            f, lambda m: m["splits"]["train"].update(file="../other/train.parquet")
        ),
        "splits.train.file is not one of the manifest's files",
    ),
    "manifest whose hashes lie": (
        lambda f, tmp: _edit_manifest(f, lambda m: m["files"][TRAIN].update(sha256="0" * 64)),
        f"{TRAIN} does not match its sha256",
    ),
    "manifest of another version": (
        lambda f, tmp: _edit_manifest(f, lambda m: m.update(version="9.9.9")),
        "says version '9.9.9', the tag is '0.1.0'",
    ),
    "manifest file missing from the repo": (
        lambda f, tmp: {k: v for k, v in f.items() if k != TRAIN},
        f"{TRAIN} is in the manifest but not in the repo",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_repo_writes_nothing_and_fails_in_one_line(
    case: str, hub, sample_registry: Registry, tmp_path: Path
) -> None:
    server, env = hub
    plant, message = CASES[case]
    _serve(server, "evil/python-ru-sample", "0.1.0", plant(_sample_files(sample_registry), tmp_path))
    registry = tmp_path / "deep" / "er" / "registry"
    registry.parent.mkdir(parents=True)  # the user's choice of place; the registry itself is ours
    before = _snapshot(tmp_path)
    proc = _run(
        env, "-m", "dataset_builder", "--registry", str(registry), "pull", "evil/python-ru-sample@0.1.0"
    )
    _assert_one_line_error(proc, message)
    assert _outside(_snapshot(tmp_path), "deep/er/registry") == _outside(before, "deep/er/registry")
    assert not (registry.exists() and _files_in(registry)), _files_in(registry)


def test_the_python_api_and_the_trainer_refuse_a_hostile_repo(
    hub, sample_registry: Registry, tmp_path: Path, tiny_mistral: Path
) -> None:
    server, env = hub
    _serve(server, "evil/repo", "0.1.0", _edit_manifest(_sample_files(sample_registry), _hostile_name))
    registry = tmp_path / "registry"
    before = _snapshot(tmp_path)

    code = (
        "import dataset_builder\n"
        "try:\n"
        f"    dataset_builder.load('evil/repo@0.1.0', registry={str(registry)!r})\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    proc = _run(env, "-c", code)
    assert proc.stdout.startswith("VerificationError evil/repo@0.1.0:"), proc.stdout + proc.stderr
    assert "invalid dataset name '../../escaped'" in proc.stdout

    out = tmp_path / "adapter"
    proc = _run(
        env, "-m", "trainer", "train", "--dataset", "evil/repo@0.1.0", "--registry", str(registry),
        "--base", str(tiny_mistral), "--out", str(out),
    )  # fmt: skip
    _assert_one_line_error(proc, "invalid dataset name '../../escaped'")
    assert not out.exists() or _files_in(out) == []
    assert _outside(_outside(_snapshot(tmp_path), "registry"), "adapter") == _outside(before, "registry")
    assert not (registry.exists() and _files_in(registry))


def test_files_outside_the_manifest_are_never_downloaded(
    hub, sample_registry: Registry, tmp_path: Path
) -> None:
    server, env = hub
    files = {**_sample_files(sample_registry), "extra/payload.sh": b"rm -rf ~\n", "data/other.parquet": b"x"}
    _serve(server, "org/python-ru-sample", "0.1.0", files)
    registry = tmp_path / "registry"
    proc = _run(
        env, "-m", "dataset_builder", "--registry", str(registry), "pull", "org/python-ru-sample@0.1.0"
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "not downloading 2 file(s) not in the manifest: data/other.parquet, extra/payload.sh" in proc.stderr
    )
    version = registry / "python-ru-sample" / "0.1.0"
    manifest = json.loads((version / "manifest.json").read_bytes())
    assert _files_in(version) == sorted([*manifest["files"], "manifest.json"])
    assert Registry(registry).verify(REF) == []
    # Only the version folder and the index of pulled refs: no download or staging folder is left.
    assert sorted(p.name for p in registry.iterdir()) == [".hub-refs.json", "python-ru-sample"]
    assert sorted(p.name for p in (registry / "python-ru-sample").iterdir()) == ["0.1.0"]


def test_a_symlink_in_the_registry_is_never_written_through(
    hub, sample_registry: Registry, tmp_path: Path
) -> None:
    server, env = hub
    _serve(server, "org/python-ru-sample", "0.1.0", _sample_files(sample_registry))
    registry = tmp_path / "registry"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    registry.mkdir()
    (registry / "python-ru-sample").symlink_to(elsewhere, target_is_directory=True)
    proc = _run(
        env, "-m", "dataset_builder", "--registry", str(registry), "pull", "org/python-ru-sample@0.1.0"
    )
    _assert_one_line_error(proc, "goes through a symbolic link")
    assert list(elsewhere.iterdir()) == []


def test_a_symlinked_file_in_a_version_fails_verification(sample_registry: Registry, tmp_path: Path) -> None:
    import shutil

    import dataset_builder
    from dataset_builder.errors import VerificationError

    registry = Registry(tmp_path / "registry")
    source = sample_registry.get(REF).path
    shutil.copytree(source, registry.root / "python-ru-sample" / "0.1.0")
    copy = tmp_path / "outside.parquet"
    data = registry.root / "python-ru-sample" / "0.1.0" / TRAIN
    shutil.copy(data, copy)
    data.unlink()
    data.symlink_to(copy)  # same bytes, so only the link itself can be the problem
    assert f"{TRAIN}: is a symbolic link" in registry.verify(REF)
    with pytest.raises(VerificationError, match="symbolic link"):
        dataset_builder.load(REF, registry=registry.root)
    with pytest.raises(VerificationError, match="symbolic link"):
        dataset_builder.load(REF, registry=registry.root, verify=False)


def test_links_at_the_refs_index_and_a_stale_download_are_not_followed(
    hub, sample_registry: Registry, tmp_path: Path
) -> None:
    """``.hub-refs.json`` a link to a file outside, a dead pull's download folder a link to a
    folder outside: the pull replaces the first and removes the second, both as links."""
    server, env = hub
    _serve(server, "org/python-ru-sample", "0.1.0", _sample_files(sample_registry))
    registry = tmp_path / "registry"
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "folder" / "precious.txt").write_text("not the registry's", encoding="utf-8")
    (outside / "index.json").write_text('{"org/python-ru-sample@0.1.0": "other@0.1.0"}', encoding="utf-8")
    registry.mkdir()
    (registry / ".hub-refs.json").symlink_to(outside / "index.json")
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = registry / f".staging-download-{gone.pid}-0badf00d"
    stale.symlink_to(outside / "folder", target_is_directory=True)
    before = _snapshot(tmp_path)
    proc = _run(
        env, "-m", "dataset_builder", "--registry", str(registry), "pull", "org/python-ru-sample@0.1.0"
    )
    assert proc.returncode == 0, proc.stderr
    assert _outside(_snapshot(tmp_path), "registry") == _outside(before, "registry")
    index = registry / ".hub-refs.json"
    assert not index.is_symlink() and json.loads(index.read_text(encoding="utf-8")) == {
        "org/python-ru-sample@0.1.0": REF
    }
    assert sorted(p.name for p in registry.iterdir()) == [".hub-refs.json", "python-ru-sample"]


def test_a_link_at_the_refs_index_temp_file_is_not_written_through(
    hub, sample_registry: Registry, tmp_path: Path
) -> None:
    """The index is written to a temporary file named after the process, then renamed: a link
    planted at that name (here by the pulling process itself, just before the pull) is removed,
    never written through."""
    server, env = hub
    _serve(server, "org/python-ru-sample", "0.1.0", _sample_files(sample_registry))
    registry = tmp_path / "registry"
    registry.mkdir()
    target = tmp_path / "outside.txt"
    target.write_text("not the registry's", encoding="utf-8")
    code = (
        "import os, sys\n"
        "from dataset_builder.cli import main\n"
        f"os.symlink({str(target)!r}, os.path.join({str(registry)!r}, f'.hub-refs.json.{{os.getpid()}}.tmp'))\n"
        f"sys.exit(main(['--registry', {str(registry)!r}, 'pull', 'org/python-ru-sample@0.1.0']))\n"
    )
    before = _snapshot(tmp_path)
    proc = _run(env, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert _outside(_snapshot(tmp_path), "registry") == _outside(before, "registry")
    assert sorted(p.name for p in registry.iterdir()) == [".hub-refs.json", "python-ru-sample"]


def test_a_link_swapped_in_during_a_pull_redirects_nothing(
    hub, sample_registry: Registry, tmp_path: Path
) -> None:
    """When the Hub is asked for the first data file, the dataset's folder is moved away and a
    link to a folder outside takes its place, holding a folder of the staging folder's name: the
    downloads still land in the staging folder the pull made, and the publish is undone."""
    from hub_server import Handler

    server, env = hub
    _serve(server, "org/python-ru-sample", "0.1.0", _sample_files(sample_registry))
    registry = tmp_path / "registry"
    outside = tmp_path / "outside"
    outside.mkdir()
    original = Handler._dispatch

    def swap_before_the_first_data_file(self, path, query, body):
        dataset = registry / "python-ru-sample"
        if path.endswith(".parquet") and not dataset.is_symlink():
            for staging in dataset.iterdir():
                (outside / staging.name).mkdir()
            dataset.rename(registry / ".moved-away")
            dataset.symlink_to(outside, target_is_directory=True)
        return original(self, path, query, body)

    Handler._dispatch = swap_before_the_first_data_file
    try:
        proc = _run(
            env, "-m", "dataset_builder", "--registry", str(registry), "pull", "org/python-ru-sample@0.1.0"
        )
    finally:
        Handler._dispatch = original
    mirrored = list(outside.iterdir())
    assert len(mirrored) == 1 and list(mirrored[0].iterdir()) == []
    _assert_one_line_error(proc, "was replaced (by a symbolic link?) while publishing; nothing published")
    assert list((registry / ".moved-away").iterdir()) == []
    assert Registry(registry).versions() == []

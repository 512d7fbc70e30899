"""Names, versions, refs and paths that reach the registry from a ref or a manifest: what is
accepted, what is refused, and that a refused one never reads or writes outside the registry."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

import dataset_builder
from dataset_builder.errors import UserError, VerificationError
from dataset_builder.registry.names import check_relpath, inside, parse_hub_ref, parse_ref
from dataset_builder.registry.store import Registry, version_key

REF = "python-ru-sample@0.1.0"


@pytest.mark.parametrize(
    "ref",
    ["python-ru-sample@0.1.0", "a@1", "A.b_c-d@0.1.0+limit5", "x@latest", "x@1.0.0rc1"],
)
def test_good_local_refs(ref: str) -> None:
    name, version = parse_ref(ref)
    assert f"{name}@{version}" == ref


@pytest.mark.parametrize(
    "ref",
    [
        "../../escaped@0.1.0",
        "/etc@1",
        "x@../1",
        "x@/abs",
        "x/y@1",
        ".hidden@1",
        "x@.1",
        "x@1\x00",
        "x@1\\..",
        "x",
        "x@",
        "@1",
        "x@1@2",
        "x@1 2",
    ],
)
def test_bad_local_refs(ref: str) -> None:
    with pytest.raises(UserError):
        parse_ref(ref)


@pytest.mark.parametrize("ref", ["org/name@0.1.0", "Org-1/na.me_2@1", "org/name@latest"])
def test_good_hub_refs(ref: str) -> None:
    repo, version = parse_hub_ref(ref)
    assert f"{repo}@{version}" == ref


@pytest.mark.parametrize(
    "ref",
    [
        "../..@1",
        "org/..@1",
        "org/na--me@1",
        "org/a..b@1",
        "org/name/x@1",
        "/name@1",
        "org/-x@1",
        "org/x@../1",
    ],
)
def test_bad_hub_refs(ref: str) -> None:
    with pytest.raises(UserError):
        parse_hub_ref(ref)


@pytest.mark.parametrize(
    "path", ["README.md", "data/train-00000-of-00001.parquet", "rejected/rejected.parquet", "a/b/c.d"]
)
def test_good_paths(path: str) -> None:
    assert check_relpath(path, "t") == path


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/etc/passwd",
        "C:/x",
        "../x",
        "data/../../x",
        "data/./x",
        "data//x",
        "data/",
        "data\\x",
        "data/x\x00",
        "data/x\n",
        ".staging-x/y",
        "data/.hidden",
    ],
)
def test_bad_paths(path: str) -> None:
    with pytest.raises(UserError):
        check_relpath(path, "t")


def test_inside_refuses_links_and_escapes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside", target_is_directory=True)
    (root / "data" / "file-link").symlink_to(tmp_path / "outside" / "x")
    assert inside(root, "data/new.parquet", "t") == root / "data" / "new.parquet"
    with pytest.raises(UserError, match="symbolic link"):
        inside(root, "link/x.parquet", "t")
    with pytest.raises(UserError, match="symbolic link"):
        inside(root, "data/file-link", "t")
    # The root itself may be reached through a link (a registry on another disk): only what is
    # below it counts.
    (tmp_path / "root-link").symlink_to(root, target_is_directory=True)
    assert inside(tmp_path / "root-link", "data/x", "t") == tmp_path / "root-link" / "data" / "x"


def test_version_order_for_latest() -> None:
    versions = ["0.9.0", "0.10.0", "0.2.0", "1.0.0rc1", "1.0.0", "1.0.0+limit5", "nightly"]
    assert sorted(versions, key=version_key) == [
        "nightly",
        "0.2.0",
        "0.9.0",
        "0.10.0",
        "1.0.0rc1",
        "1.0.0",
        "1.0.0+limit5",
    ]


@pytest.mark.parametrize(
    "ref", ["../../escaped@0.1.0", "/tmp@0.1.0", "python-ru-sample@../../x", "python-ru-sample@latest/../x"]
)
def test_bad_refs_on_the_command_line_and_in_load(ref: str, sample_registry: Registry) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dataset_builder", "--registry", str(sample_registry.root), "show", ref],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    with pytest.raises(UserError):
        dataset_builder.load(ref, registry=sample_registry.root)


def _copy(sample_registry: Registry, tmp_path: Path) -> tuple[Registry, Path]:
    registry = Registry(tmp_path / "registry")
    target = registry.root / "python-ru-sample" / "0.1.0"
    shutil.copytree(sample_registry.get(REF).path, target)
    return registry, target


def _edit(version: Path, change) -> None:
    path = version / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    change(manifest)
    path.write_text(json.dumps(manifest), encoding="utf-8")


def test_a_local_manifest_cannot_point_outside_its_version(sample_registry: Registry, tmp_path: Path) -> None:
    registry, version = _copy(sample_registry, tmp_path)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"not the registry's")
    _edit(version, lambda m: m["files"].update({"../../../secret.bin": {"sha256": "0" * 64}}))
    with pytest.raises(
        VerificationError, match=re.escape("'../../../secret.bin' has an empty, '.' or '..' component")
    ):
        registry.verify(REF)
    with pytest.raises(VerificationError, match=re.escape("'../../../secret.bin'")):
        dataset_builder.load(REF, registry=registry.root, verify=False)

    registry, version = _copy(sample_registry, tmp_path / "2")
    train = "data/train-00000-of-00001.parquet"
    _edit(version, lambda m: m["splits"]["train"].update(file=str(secret)))
    with pytest.raises(VerificationError, match=r"splits\.train\.file"):
        dataset_builder.load(REF, registry=registry.root, verify=False)
    _edit(version, lambda m: m["splits"]["train"].update(file=train))
    assert dataset_builder.load(REF, registry=registry.root)["train"].num_rows > 0

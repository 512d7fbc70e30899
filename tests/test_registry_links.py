"""Symbolic links planted in the registry, or swapped in while a build runs: a build writes,
renames and deletes nothing outside the registry, and a refusal is one line.

Every case plants a link to a folder outside the registry that holds a file, and compares
everything outside the registry before and after. The swap happens inside a real build, from a
stage of the recipe, by real renames and links: the build's own code is not touched.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import write_jsonl

from dataset_builder.cli import main
from dataset_builder.registry.anchored import Folder, LinkRefused
from dataset_builder.registry.store import Registry
from dataset_builder.stages import STAGES, Stage, StageConfig, StageContext
from dataset_builder.testing import alpaca_source, write_recipe

ROWS = [{"instruction": f"task number {i}", "output": f"answer {i}"} for i in range(30)]
ENTRY = "t@1.0.0"  # the recipe's NAME@VERSION


def snapshot(root: Path, leave_out: Path) -> dict[str, str]:
    """Every entry under ``root`` but ``leave_out``: a file by its sha256, a link by its target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d != leave_out]
        for entry in [*dirnames, *filenames]:
            path = here / entry
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                out[rel] = f"link -> {os.readlink(path)}"
            elif path.is_file():
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[rel] = "folder"
    return out


@pytest.fixture
def place(tmp_path: Path) -> dict[str, Path]:
    """A registry, a recipe that publishes, one whose input breaks after two rows, and a folder
    outside the registry with a file in it."""
    write_jsonl(tmp_path / "good" / "data.jsonl", ROWS)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "data.jsonl").write_text(
        '{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "d"}\n{"broken\n',
        encoding="utf-8",
    )
    outside = tmp_path / "outside"
    (outside / ENTRY).mkdir(parents=True)
    (outside / ENTRY / "precious.txt").write_text("not the registry's", encoding="utf-8")
    (outside / "precious.txt").write_text("not the registry's either", encoding="utf-8")
    return {
        "registry": tmp_path / "registry",
        "good": write_recipe(tmp_path / "good", alpaca_source()),
        "bad": write_recipe(tmp_path / "bad", alpaca_source()),
        "outside": outside,
    }


def build(place: dict[str, Path], recipe: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["--registry", str(place["registry"]), "build", str(place[recipe]), "--quiet"])
    return code, capsys.readouterr().err.strip().splitlines()


def dead_pid() -> int:
    """The id of a process that has ended (a killed build's staging folders carry such ids)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("recipe", ["good", "bad"])
def test_a_link_at_failed_is_never_followed(
    place: dict[str, Path], recipe: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A successful build used to delete ``outside/t@1.0.0`` (its stale failure report, it
    thought) through a link planted at ``REGISTRY/failed``."""
    place["registry"].mkdir()
    (place["registry"] / "failed").symlink_to(place["outside"], target_is_directory=True)
    before = snapshot(tmp_path, place["registry"])
    code, err = build(place, recipe, capsys)
    if recipe == "good":
        assert code == 0 and Registry(place["registry"]).get("t@1.0.0").manifest["splits"]
    else:
        assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
        assert err[0].endswith(
            f"nothing published; no failure report ({place['registry'] / 'failed'}: goes through a symbolic "
            "link; refusing to follow it (remove the link))"
        ), err
    assert snapshot(tmp_path, place["registry"]) == before
    assert (place["registry"] / "failed").is_symlink()


@pytest.mark.parametrize("recipe", ["good", "bad"])
def test_a_link_at_a_failure_report_is_replaced_not_followed(
    place: dict[str, Path], recipe: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (place["registry"] / "failed").mkdir(parents=True)
    report = place["registry"] / "failed" / ENTRY
    report.symlink_to(place["outside"] / ENTRY, target_is_directory=True)
    before = snapshot(tmp_path, place["registry"])
    code, err = build(place, recipe, capsys)
    assert snapshot(tmp_path, place["registry"]) == before
    if recipe == "good":  # the "report" of an earlier failure is removed: the link only
        assert code == 0 and not os.path.lexists(report)
    else:  # the new report takes the link's place
        assert code == 2 and len(err) == 1 and f"stage counts and rejected rows in {report}" in err[0]
        assert not report.is_symlink() and (report / "report.json").is_file()
    assert sorted(p.name for p in report.parent.iterdir()) == ([ENTRY] if recipe == "bad" else [])


def test_a_link_at_the_dataset_folder_is_refused(
    place: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    place["registry"].mkdir()
    (place["registry"] / "t").symlink_to(place["outside"], target_is_directory=True)
    before = snapshot(tmp_path, place["registry"])
    code, err = build(place, "good", capsys)
    # The version check before any stage runs is the first to meet the link; it names the link.
    assert code == 2 and err == [
        f"error: t@1.0.0: 't/1.0.0' goes through a symbolic link ({place['registry'] / 't'})"
    ]
    assert snapshot(tmp_path, place["registry"]) == before


def test_stale_staging_links_are_removed_not_followed(
    place: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A killed build's staging folders are removed by the next build; a link among them, or in
    one of them, is removed as a link."""
    dataset = place["registry"] / "t"
    dataset.mkdir(parents=True)
    pid = dead_pid()
    (dataset / f".staging-1.0.0-{pid}-0badf00d").symlink_to(place["outside"], target_is_directory=True)
    stale = dataset / f".staging-1.0.0-{pid}-0ddba11a"
    (stale / "data").mkdir(parents=True)
    (stale / "data" / "inner").symlink_to(place["outside"], target_is_directory=True)
    (stale / "data" / "file").symlink_to(place["outside"] / "precious.txt")
    before = snapshot(tmp_path, place["registry"])
    code, err = build(place, "good", capsys)
    assert code == 0, err
    assert snapshot(tmp_path, place["registry"]) == before
    assert sorted(p.name for p in dataset.iterdir()) == ["1.0.0"]


class _NoSettings(StageConfig):
    pass


class SwapDatasetFolder(Stage):
    """Passes rows through; on its first batch does what an attacker with write access to the
    registry would, between the build's making of its staging folder and its publish: moves
    ``REGISTRY/t`` away, mirrors the staging folder's name in a folder outside and puts a link to
    that folder at ``REGISTRY/t``. A build that wrote or renamed by path would now write the split
    files and publish the version outside."""

    name = "swap"
    Config = _NoSettings

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        for i, batch in enumerate(batches):
            if i == 0:
                staging = Path(ctx.workdir).resolve().parent
                dataset = staging.parent
                outside = dataset.parent.parent / "outside"
                (outside / staging.name).mkdir()
                dataset.rename(dataset.parent / ".moved-away")
                dataset.symlink_to(outside, target_is_directory=True)
            yield batch


def test_a_link_swapped_in_during_a_build_redirects_nothing(
    place: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(STAGES, "swap", "test_registry_links:SwapDatasetFolder")
    text = place["good"].read_text(encoding="utf-8")
    place["good"].write_text(
        text.replace(
            '[[stages]]\ntype = "format"', '[[stages]]\ntype = "swap"\n\n[[stages]]\ntype = "format"'
        ),
        encoding="utf-8",
    )
    code, err = build(place, "good", capsys)
    registry = place["registry"]
    # Outside: only the empty folder the attacker made; the split files went where the build put
    # its staging folder, and left with it.
    staged = [p for p in place["outside"].iterdir() if p.name.startswith(".staging-")]
    assert len(staged) == 1 and list(staged[0].iterdir()) == []
    assert sorted(p.name for p in place["outside"].iterdir()) == sorted(
        [ENTRY, "precious.txt", staged[0].name]
    )
    assert code == 3 and len(err) == 1, err
    assert err[0].startswith(
        f"error: t@1.0.0: {registry / 't'} was replaced (by a symbolic link?) while publishing; nothing published"
    ), err
    assert list((registry / ".moved-away").iterdir()) == []  # no version, no staging folder left
    assert Registry(registry).versions() == []


def test_folder_operations_never_follow_a_link(tmp_path: Path) -> None:
    """The operations every case above relies on, one by one, against links of each kind."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text("not the registry's", encoding="utf-8")
    source = tmp_path / "source.bin"
    source.write_bytes(b"data")
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "sub" / "file-link").symlink_to(outside / "f")
    (root / "index").symlink_to(outside / "f")
    tmp = f".index.{os.getpid()}.tmp"  # the temporary name of an atomic write of "index"
    before = snapshot(tmp_path, root)
    with Folder.open_root(root) as folder:
        with pytest.raises(LinkRefused, match="goes through a symbolic link"):
            folder.open("link", create=True)
        with pytest.raises(LinkRefused, match="goes through a symbolic link"):
            folder.open_path("link/x", "t")
        with pytest.raises(LinkRefused, match="goes through a symbolic link"):
            folder.copy_in("link/new.parquet", source, "t")
        with pytest.raises(FileExistsError):
            folder.copy_in("sub/file-link", source, "t")
        with folder.open("sub") as sub, pytest.raises(LinkRefused, match="goes through a symbolic link"):
            sub.read_bytes("file-link")
        assert folder.copy_in("sub/deeper/new.bin", source, "t") == hashlib.sha256(b"data").hexdigest()
        os.mkdir(root / tmp)  # whatever sits at the temporary name is removed, not written into
        folder.write_bytes("index", b"1")
        (root / tmp).symlink_to(outside / "f")
        folder.write_bytes("index", b"2")
        folder.remove_tree("link")
        with folder.open("sub") as sub:
            sub.remove_tree("file-link")
    assert snapshot(tmp_path, root) == before
    assert not (root / "index").is_symlink() and (root / "index").read_bytes() == b"2"
    assert sorted(os.listdir(root)) == ["index", "sub"]
    assert sorted(os.listdir(root / "sub")) == ["deeper"]

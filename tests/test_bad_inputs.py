"""The mistakes a new user makes, as a table: each ends in one ``error:`` line that names the problem
and the way out, a non-zero exit, in under 5 seconds, leaving nothing behind.

Bad source files (broken JSON, wrong encoding, missing columns, corrupt Parquet, ...) are in
tests/test_build.py; the trainer's options (missing models, --out folders, ...) in
tests/test_trainer_cli.py, which also checks that nothing heavy is imported before the error. This
table holds the rest: the version conflicts, wrong files in the wrong place, an unreachable Hub or
package index, and Hub repos or tags that do not exist.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import ROOT, write_jsonl

from dataset_builder.testing import alpaca_source, write_recipe

STAGES = [
    {"type": "normalize"},
    {"type": "translate", "if_missing": "skip", "cache": False},
    {"type": "split", "test_ratio": 0.2, "seed": 1},
]
ROWS = [
    {"instruction": f"Write function number {i} in Python.", "output": f"def f{i}(): pass"} for i in range(8)
]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _project(
    folder: Path, description: str = "Eight rows.", rows: list | None = None, **settings: str
) -> Path:
    write_jsonl(folder / "data.jsonl", ROWS if rows is None else rows)
    return write_recipe(folder, alpaca_source(), STAGES, **settings, description=description)


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory, tiny_argos: dict) -> dict:
    """A registry with ``t@1.0.0`` published (built without an Argos package), recipes that
    differ from it in one thing each, a file where a folder belongs, and a local Hub with a repo
    tagged 1.0.0."""
    from dataset_builder.cli import main

    root = tmp_path_factory.mktemp("mistakes")
    recipe = _project(root / "project")
    assert main(["--registry", str(root / "reg"), "build", str(recipe), "--quiet"]) == 0
    described = "Eight rows, described anew."
    write_recipe(root / "project", alpaca_source(), STAGES, file="described.toml", description=described)
    # A version not published yet, described anew.
    write_recipe(
        root / "project", alpaca_source(), STAGES, file="next.toml", version="2.0.0", description=described
    )
    _project(root / "changed-input", rows=[*ROWS, {"instruction": "One more task.", "output": "pass"}])
    (root / "folder-source" / "data").mkdir(parents=True)
    write_recipe(root / "folder-source", alpaca_source("data"), STAGES, name="w", description="x")
    write_recipe(root, alpaca_source(), STAGES, file="bad-version.toml", version="1.0 beta")
    (root / "a-file").write_text("not a registry\n", encoding="utf-8")
    (root / "model").mkdir()
    (root / "model" / "config.json").write_text("{}", encoding="utf-8")  # found, never loaded
    (root / "model" / "model.safetensors").write_bytes(b"")
    _project(root / "empty-rows", rows=[{"instruction": 5, "output": "x"}], name="u")
    return {"root": root, "reg": str(root / "reg"), "packages": str(tiny_argos["packages_dir"])}


@dataclass(frozen=True)
class Case:
    name: str
    tool: str  # "dataset-builder" or "qlora-trainer"
    argv: Callable[[dict], list[str]]
    says: tuple[str, ...]  # what the one error line must hold: the problem and the way out
    env: dict[str, str] = field(default_factory=dict)
    # Folders a failed command may leave on purpose (a failed build's report).
    may_leave: tuple[str, ...] = ()
    # `check` lists every problem it finds: then only the line that says `says` must be one.
    only_error: bool = True


def _db(p: dict, *args: str) -> list[str]:
    return ["--registry", p["reg"], *args]


CASES = [
    Case("recipe is a folder", "dataset-builder", lambda p: ["build", str(ROOT / "recipes")],
         ("recipes: is a folder; give a recipe file such as", "sample.toml")),
    Case("registry is a file (build)", "dataset-builder",
         lambda p: ["--registry", str(p["root"] / "a-file"), "build", str(p["root"] / "project" / "recipe.toml")],
         ("a-file: is a file, not a folder", "--registry")),
    Case("registry is a file (list)", "dataset-builder",
         lambda p: ["--registry", str(p["root"] / "a-file"), "list"], ("a-file: is a file, not a folder",)),
    Case("same version, changed description", "dataset-builder",
         lambda p: _db(p, "build", str(p["root"] / "project" / "described.toml")),
         ("t@1.0.0 is already published", "recipe key dataset.description", "--set-version 1.0.1")),
    Case("same version, changed input file", "dataset-builder",
         lambda p: _db(p, "build", str(p["root"] / "changed-input" / "recipe.toml")),
         ("t@1.0.0 is already published", "input data.jsonl (sha256", "--set-version 1.0.1")),
    Case("same version, a translation package installed since", "dataset-builder",
         lambda p: _db(p, "build", str(p["root"] / "project" / "recipe.toml")),
         ("t@1.0.0 is already published", "translation model (translate: none installed then",
          "--set-version 1.0.1"), env={"DATASET_BUILDER_ARGOS_DIR": "{packages}"}),
    Case("check finds the conflict too", "dataset-builder",
         lambda p: _db(p, "check", str(p["root"] / "project" / "described.toml")),
         ("recipe key dataset.description", "--set-version 1.0.1")),
    Case("--set-version not a version", "dataset-builder",
         lambda p: _db(p, "build", str(p["root"] / "project" / "recipe.toml"), "--set-version", "1.0 beta"),
         ("--set-version: invalid version '1.0 beta'", "letters, digits")),
    Case("dry run, --set-version of a version published from something else", "dataset-builder",
         lambda p: _db(p, "build", str(p["root"] / "project" / "next.toml"), "--dry-run", "--set-version", "1.0.0"),
         ("t@1.0.0 is already published", "recipe key dataset.description", "--set-version 1.0.1")),
    Case("dry run, --set-version not a version", "dataset-builder",
         lambda p: _db(p, "build", str(p["root"] / "project" / "recipe.toml"), "--dry-run", "--set-version", "1.0 beta"),
         ("--set-version: invalid version '1.0 beta'", "letters, digits")),
    Case("recipe version not a version", "dataset-builder",
         lambda p: _db(p, "build", str(p["root"] / "bad-version.toml")),
         ("key 'dataset.version': '1.0 beta' is not valid: use letters, digits", "e.g. 0.1.0")),
    Case("source path is a folder", "dataset-builder",
         lambda p: _db(p, "build", str(p["root"] / "folder-source" / "recipe.toml")),
         ("folder-source/data: is a folder; name its files, e.g. 'data/*.jsonl'",)),
    Case("no rows survive a first build", "dataset-builder",
         lambda p: _db(p, "build", str(p["root"] / "empty-rows" / "recipe.toml"), "--quiet"),
         ("no rows survived the pipeline", "nothing published"), may_leave=("reg/failed",)),
    Case("check a training config", "dataset-builder", lambda p: ["check", str(ROOT / "recipes" / "train-tiny.toml")],
         ("not a recipe", "qlora-trainer train --config")),
    Case("check an eval sets file", "dataset-builder", lambda p: ["check", str(ROOT / "recipes" / "eval-paper.toml")],
         ("not a recipe", "qlora-trainer perplexity --eval")),
    Case("check a Hub recipe, Hub unreachable", "dataset-builder",
         lambda p: ["check", str(ROOT / "recipes" / "zephyr-python-ru.toml")],
         ("Hub is unreachable", "codefuse-ai/CodeExercise-Python-27k", "openai/openai_humaneval",
          "HF_HUB_OFFLINE=1"), env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:{closed}"},
         only_error=False),
    Case("push offline", "dataset-builder", lambda p: _db(p, "push", "t@1.0.0", "--repo", "me/t"),
         ("HF_HUB_OFFLINE is set: push and pull need the Hub", "HF_ENDPOINT")),
    Case("push, Hub unreachable", "dataset-builder", lambda p: _db(p, "push", "t@1.0.0", "--repo", "me/t"),
         ("Hub is unreachable", "push and pull need a network, or HF_ENDPOINT"),
         env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:{closed}"}),
    Case("models install: no such file", "dataset-builder",
         lambda p: ["models", "install", "translate-en_ru-1_9.argosmodel"],
         ("translate-en_ru-1_9.argosmodel: no such file", "argospm/index")),
    Case("dups --top negative", "dataset-builder", lambda p: _db(p, "dups", "t@1.0.0", "--top", "-1"),
         ("dataset-builder dups: argument --top: -1 is negative", "see `dataset-builder dups --help`")),
    Case("build without a recipe", "dataset-builder", lambda p: ["build"],
         ("dataset-builder build: the following arguments are required: recipe",)),
    Case("train --config a folder", "qlora-trainer",
         lambda p: ["train", "--config", str(ROOT / "recipes"), "--dataset", "t@1.0.0", "--base", "b", "--out", "o"],
         ("recipes: is a folder", "recipes/train-tiny.toml")),
    Case("train --config a dataset recipe", "qlora-trainer",
         lambda p: ["train", "--config", str(ROOT / "recipes" / "sample.toml"), "--dataset", "t@1.0.0",
                    "--base", "b", "--out", "o"], ("is a dataset recipe", "recipes/train-tiny.toml")),
    Case("perplexity --eval a training config", "qlora-trainer",
         lambda p: ["perplexity", "--base", str(p["root"] / "model"), "--eval", str(ROOT / "recipes" / "train-tiny.toml"), "--out", "o"],
         ("no [[sets]] tables", "recipes/eval-paper.toml")),
    Case("benchmark leaderboard, Hub unreachable", "qlora-trainer",
         lambda p: ["benchmark", "--base", "models/none", "--tasks", "leaderboard", "--out", "o"],
         ("lm-evaluation-harness reads these tasks' data from the Hub", "unreachable", "HF_HUB_OFFLINE=1"),
         env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:{closed}"}),
]  # fmt: skip


def _tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_mistake_is_one_line_with_the_way_out(
    case: Case, place: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import trainer.hub_access
    from dataset_builder.cli import main as dataset_builder
    from trainer.cli import main as qlora_trainer

    closed = str(_closed_port())
    for key, value in case.env.items():
        monkeypatch.setenv(key, value.format(closed=closed, packages=place["packages"]))
    trainer.hub_access.hub_unreachable.cache_clear()  # a probe of another test's endpoint
    monkeypatch.chdir(tmp_path)
    before = _tree(place["root"])
    started = time.monotonic()
    try:
        code = (dataset_builder if case.tool == "dataset-builder" else qlora_trainer)(case.argv(place))
    except SystemExit as exc:  # the argument parser's own mistakes
        code = exc.code
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("WARNING: ")]
    if not case.only_error:
        lines = [line for line in lines if case.says[0] in line]
    assert code != 0, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for words in case.says:
        assert words in lines[0], f"{words!r} not in {lines[0]!r}"
    assert len(lines[0]) < 600, len(lines[0])
    assert elapsed < 5, f"{elapsed:.1f} s"
    left = {p for p in _tree(place["root"]) - before if not any(p.startswith(m) for m in case.may_leave)}
    assert left == set() and _tree(tmp_path) == set(), "left behind"
    assert not (place["root"] / "reg" / "u").exists()  # no empty REGISTRY/NAME/ after a failed build


def test_a_dry_run_checks_the_version_set_for_the_build(place: dict, capsys: pytest.CaptureFixture) -> None:
    """The conflict of a recipe with its own version is no conflict under the version the build would
    publish instead: the dry run says the build is ready, as the build itself would publish."""
    from dataset_builder.cli import main

    described = str(place["root"] / "project" / "described.toml")
    assert main(_db(place, "build", described, "--dry-run")) == 2
    assert "recipe key dataset.description" in capsys.readouterr().err
    assert main(_db(place, "build", described, "--dry-run", "--set-version", "1.0.1")) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.splitlines()[-1].startswith(f"{described}: ready to build")
    assert not (place["root"] / "reg" / "t" / "1.0.1").exists()


def test_pull_names_the_missing_repo_or_tag_and_the_tags_there_are(place: dict, tmp_path: Path) -> None:
    from hub_server import HubServer, Repo

    with HubServer() as server:
        server.state.repos["me/t"] = Repo(commits={"c0": {}}, branches={"main": "c0"},
                                          tags={"1.0.0": "c0", "0.9.0": "c0"})  # fmt: skip
        env = server.client_env(tmp_path)
        for ref, says in (
            ("me/t@2.0.0", "me/t@2.0.0: me/t has no tag '2.0.0'; its version tags: 0.9.0, 1.0.0"),
            ("me/none@1.0.0", "me/none@1.0.0: no dataset repo me/none on http://127.0.0.1:"),
        ):
            proc = subprocess.run(
                [sys.executable, "-m", "dataset_builder", "--registry", str(tmp_path / "reg"), "pull", ref],
                env=env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert proc.returncode != 0
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"error: {says}"), proc.stderr
    assert not (tmp_path / "reg").exists() or not any((tmp_path / "reg").iterdir())


def test_outputs_are_made_with_the_users_umask(tmp_path: Path) -> None:
    """tiny-model (as merge, perplexity and benchmark) writes into a staging folder renamed into
    place: the folder must get the mode mkdir would give it, not mkdtemp's 0700."""
    from trainer.cli import main

    old = os.umask(0o022)
    try:
        assert main(["tiny-model", "--out", str(tmp_path / "tiny"), "--layers", "1", "--hidden", "16"]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "tiny").stat().st_mode & 0o777 == 0o755


def test_list_names_the_registry_it_read(place: dict, tmp_path: Path, monkeypatch, capsys) -> None:
    from dataset_builder.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr("dataset_builder.registry.store.DATA_HOME", tmp_path / "home" / "data")
    (tmp_path / "registry").symlink_to(place["root"] / "reg")
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "no versions published in " in out and "./registry holds versions: add --registry registry" in out
    assert main(["--registry", "registry", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"registry: {(place['root'] / 'reg').resolve()}" and out[1].startswith("t@1.0.0\t")


def test_an_unreachable_package_index_says_so_in_a_sentence() -> None:
    from dataset_builder.errors import UserError
    from dataset_builder.network import check_host_reachable

    with pytest.raises(UserError, match=r"the Argos package index is unreachable \(ConnectionRefusedError"):
        check_host_reachable(f"http://127.0.0.1:{_closed_port()}", "the Argos package index")


def test_a_command_logs_to_stderr_as_it_is_when_the_line_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commands run in-process one after another (as in this suite): a line logged after the first
    one goes to the stderr of its moment, not to one that was replaced and closed since."""
    import io
    import logging

    from dataset_builder.cli import main

    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    assert main(["--registry", str(tmp_path / "reg"), "list"]) == 0
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("dataset_builder.cli").warning("after the first command")
    assert second.getvalue() == "WARNING: after the first command\n"

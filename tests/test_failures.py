"""A build that fails after reading data leaves REGISTRY/failed/NAME@VERSION/ and says why in one line."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, write_jsonl

from dataset_builder.cli import main
from dataset_builder.errors import BuildError, RejectLimitExceeded
from dataset_builder.publishing.pipeline import build
from dataset_builder.recipe.schema import load_recipe
from dataset_builder.registry.store import Registry
from dataset_builder.stages import STAGES, Stage, StageConfig, StageContext
from dataset_builder.testing import SIMPLE_STAGES, alpaca_source, insert_stage, write_recipe


class _NoSettings(StageConfig):
    pass


class Crash(Stage):
    """Rejects two rows, then fails on its second batch the way a bug would."""

    name = "crash"
    Config = _NoSettings

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        for i, batch in enumerate(batches):
            if i == 1:
                raise ValueError("boom\nsecond line of the message")
            ctx.reject(batch.slice(0, 2).to_pylist(), "too_early", "test stage")
            yield batch.slice(2)


@pytest.fixture(scope="module")
def sample_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One translation cache for the sample's builds with the tiny package: the same sentences
    through the same model, translated once."""
    return tmp_path_factory.mktemp("sample-cache") / "cache.sqlite"


def _sample_copy(tmp_path: Path, cache: Path) -> Path:
    """The bundled sample recipe and its data in tmp_path, its translation cache at ``cache``."""
    shutil.copytree(ROOT / "recipes" / "sample_data", tmp_path / "sample_data")
    text = (ROOT / "recipes" / "sample.toml").read_text(encoding="utf-8")
    text = text.replace('cache_path = "../.cache/translations.sqlite"', f'cache_path = "{cache.as_posix()}"')
    path = tmp_path / "sample.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_sample_over_its_reject_limit_names_the_translation_checks(
    tmp_path: Path, tiny_argos: dict, sample_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tiny random model: the translation checks reject what it writes, and the error says so.
    monkeypatch.setenv("DATASET_BUILDER_ARGOS_DIR", str(tiny_argos["packages_dir"]))
    registry = Registry(tmp_path / "reg")
    recipe = _sample_copy(tmp_path, sample_cache)
    # The shipped sample publishes even with a random model (see the next test); a corpus recipe's
    # tight limit is what this test is about.
    text = recipe.read_text(encoding="utf-8")
    recipe.write_text(
        text.replace("max_rejected_fraction = 0.85", "max_rejected_fraction = 0.5"), encoding="utf-8"
    )
    with pytest.raises(RejectLimitExceeded) as err:
        build(load_recipe(recipe), registry, show_progress=False)
    message = str(err.value)
    assert "\n" not in message
    folder = registry.root / "failed" / "python-ru-sample@0.1.0"
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    rejected = pq.read_table(folder / "rejected.parquet").to_pylist()
    counts = Counter(f"{r['stage']}/{r['reason']}" for r in rejected)
    top = counts.most_common(1)[0]
    assert top[0].startswith("translate/")
    assert re.match(
        rf"\d+ of 207 rows rejected, over max_rejected_fraction 0.5 in \[publish\]: {top[0]} {top[1]}, ",
        message,
    )
    assert f"stage counts and rejected rows in {folder}" in message
    assert report["rejected"]["rows"] == len(rejected) and report["rejected"]["by_stage_reason"] == dict(
        counts
    )
    translate = next(s for s in report["stages"] if s["stage"] == "translate")
    assert sum(translate["dropped"].values()) == sum(
        n for k, n in counts.items() if k.startswith("translate/")
    )
    assert report["failed_stage"] is None and report["error_type"] == "RejectLimitExceeded"
    assert registry.versions() == []
    # A later build of the same version that publishes removes the report.
    write_jsonl(tmp_path / "small" / "data.jsonl", [{"instruction": "task", "output": "answer"}])
    small = write_recipe(tmp_path / "small", alpaca_source(), name="python-ru-sample", version="0.1.0")
    build(load_recipe(small), registry, show_progress=False)
    assert not folder.exists() and [v.ref for v in registry.versions()] == ["python-ru-sample@0.1.0"]


def test_the_shipped_sample_publishes_with_a_random_model_installed(
    tmp_path: Path,
    tiny_argos: dict,
    sample_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from dataset_builder.cli import main

    monkeypatch.setenv("DATASET_BUILDER_ARGOS_DIR", str(tiny_argos["packages_dir"]))
    recipe = _sample_copy(tmp_path, sample_cache)
    registry = tmp_path / "reg"
    assert main(["--registry", str(registry), "build", str(recipe), "--quiet"]) == 0
    assert main(["--registry", str(registry), "show", "python-ru-sample@0.1.0"]) == 0
    shown = capsys.readouterr().out
    assert "translate/" in shown  # the rows the translation checks refused are listed by reason


def test_a_crashing_stage_is_one_line_with_a_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(STAGES, "crash", "test_failures:Crash")
    write_jsonl(
        tmp_path / "data.jsonl", [{"instruction": f"task {i}", "output": f"answer {i}"} for i in range(5000)]
    )
    stages = insert_stage(SIMPLE_STAGES, {"type": "crash"}, before="exact_dedup")
    recipe = write_recipe(tmp_path, alpaca_source(), stages)
    with pytest.raises(
        BuildError,
        match=r"^stage 'crash' failed: ValueError: boom; rejected so far: crash/too_early 2 \(e\.g\. data\.jsonl:1: test stage\); nothing published; ",
    ):
        build(load_recipe(recipe), Registry(tmp_path / "reg"), show_progress=False)
    assert main(["--registry", str(tmp_path / "reg"), "build", str(recipe), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    report = json.loads((tmp_path / "reg" / "failed" / "t@1.0.0" / "report.json").read_text(encoding="utf-8"))
    assert report["failed_stage"] == "crash" and report["error_type"] == "ValueError"
    assert "Traceback" in report["traceback"] and "boom" in report["traceback"]
    stages_by_name = {s["stage"]: s for s in report["stages"]}
    assert stages_by_name["crash"]["rows_in"] == 4096 and stages_by_name["crash"]["dropped"] == {
        "too_early": 2
    }
    assert report["rows_by_source"]["src"]["rejected"] == 2
    assert pq.read_table(tmp_path / "reg" / "failed" / "t@1.0.0" / "rejected.parquet").num_rows == 2
    assert Registry(tmp_path / "reg").versions() == []
    assert not list((tmp_path / "reg" / "t").glob(".staging-*"))


def test_no_report_when_no_data_was_read(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, alpaca_source("missing.jsonl"))
    assert main(["--registry", str(tmp_path / "reg"), "build", str(recipe), "--quiet"]) == 2
    assert not (tmp_path / "reg" / "failed").exists()


def test_input_error_after_some_rows_leaves_a_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data.jsonl").write_text(
        '{"instruction": "a", "output": 1}\n{"instruction": "b", "output": "c"}\n{"broken\n', encoding="utf-8"
    )
    recipe = write_recipe(tmp_path, alpaca_source())
    assert main(["--registry", str(tmp_path / "reg"), "build", str(recipe), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    folder = tmp_path / "reg" / "failed" / "t@1.0.0"
    assert err == (
        f"error: {tmp_path / 'data.jsonl'}:3: invalid JSON (Invalid control character at at column 9); "
        "rejected so far: load/non_string_field 1 (e.g. data.jsonl:1: key 'output' is int, expected string); "
        f"nothing published; stage counts and rejected rows in {folder}"
    )
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    assert report["rows_by_source"] == {"src": {"read": 2, "written": 0, "rejected": 1}}

"""The conservation law: rows read = rows published + rows rejected, per source, or no version.

The faulty stages below exist only here; they are registered in the stage registry the way a
recipe's stage types are, and run inside a real build.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import write_jsonl

from dataset_builder.cli import main
from dataset_builder.errors import ConservationError
from dataset_builder.publishing.pipeline import build
from dataset_builder.recipe.schema import load_recipe
from dataset_builder.registry.store import Registry
from dataset_builder.stages import STAGES, Stage, StageConfig, StageContext
from dataset_builder.testing import SIMPLE_STAGES, alpaca_source, insert_stage, write_recipe


class _NoSettings(StageConfig):
    pass


class Leaky(Stage):
    """Drops every third row without rejecting it."""

    name = "leaky"
    Config = _NoSettings

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        for batch in batches:
            keep = [i % 3 != 0 for i in range(batch.num_rows)]
            yield batch.filter(pa.array(keep))


class Honest(Stage):
    """Drops every third row, rejecting it with a reason."""

    name = "honest"
    Config = _NoSettings

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        for batch in batches:
            drop = [i % 3 == 0 for i in range(batch.num_rows)]
            ctx.reject(batch.filter(pa.array(drop)).to_pylist(), "every_third", "test stage")
            yield batch.filter(pc.invert(pa.array(drop)))


class Impatient(Stage):
    """Passes its first batch on and never reads the rest."""

    name = "impatient"
    Config = _NoSettings

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        yield next(batches)


class Copier(Stage):
    """Yields every batch twice, declaring nothing."""

    name = "copier"
    Config = _NoSettings

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        for batch in batches:
            yield batch
            yield batch


class Relabel(Stage):
    """Labels every fourth row with a split the writer does not know."""

    name = "relabel"
    Config = _NoSettings

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        for batch in batches:
            labels = batch.column("split").to_pylist()
            labels = ["validation" if i % 4 == 0 else s for i, s in enumerate(labels)]
            yield batch.drop_columns(["split"]).append_column("split", pa.array(labels, pa.string()))


@pytest.fixture
def faulty_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("leaky", "honest", "impatient", "copier", "relabel"):
        monkeypatch.setitem(STAGES, name, f"test_conservation:{name.capitalize()}")


def _recipe(tmp_path: Path, stage: str, rows: int = 30, before: str = "exact_dedup") -> Path:
    records = [{"instruction": f"task number {i}", "output": f"answer {i}"} for i in range(rows)]
    write_jsonl(tmp_path / "data.jsonl", records)
    return write_recipe(tmp_path, alpaca_source(), insert_stage(SIMPLE_STAGES, {"type": stage}, before))


def test_a_stage_that_drops_rows_without_rejecting_them_fails_the_build(
    tmp_path: Path, faulty_stages: None, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = _recipe(tmp_path, "leaky")
    with pytest.raises(
        ConservationError,
        match=r"rows lost in stage 'leaky': source 'src': 30 in, 20 out, 0 rejected \(10 unaccounted for\)",
    ):
        build(load_recipe(recipe), Registry(tmp_path / "reg"), show_progress=False)
    assert Registry(tmp_path / "reg").versions() == []
    assert main(["--registry", str(tmp_path / "reg"), "build", str(recipe), "--quiet"]) == 5
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "rows lost in stage 'leaky'" in err
    report = json.loads((tmp_path / "reg" / "failed" / "t@1.0.0" / "report.json").read_text(encoding="utf-8"))
    assert report["error_type"] == "ConservationError"
    assert report["rows_by_source"]["src"] == {"read": 30, "written": 20, "rejected": 0}


def test_the_same_drops_with_reasons_publish(tmp_path: Path, faulty_stages: None) -> None:
    result = build(load_recipe(_recipe(tmp_path, "honest")), Registry(tmp_path / "reg"), show_progress=False)
    rejected = pq.read_table(result.path / "rejected" / "rejected.parquet").to_pylist()
    assert sum(r["reason"] == "every_third" for r in rejected) == 10
    published = sum(
        pq.read_metadata(result.path / meta["file"]).num_rows for meta in result.manifest["splits"].values()
    )
    assert published == 20
    assert result.manifest["rows_by_source"] == {"src": {"read": 30, "published": 20, "rejected": 10}}


def test_a_stage_that_stops_reading_its_input_fails_the_build(tmp_path: Path, faulty_stages: None) -> None:
    # 5000 rows arrive in three batches; the stage reads one and returns.
    recipe = _recipe(tmp_path, "impatient", rows=5000)
    with pytest.raises(
        ConservationError, match=r"stage 'impatient' stopped reading its input after 2048 rows"
    ):
        build(load_recipe(recipe), Registry(tmp_path / "reg"), show_progress=False)
    assert Registry(tmp_path / "reg").versions() == []


def test_a_stage_that_invents_rows_fails_the_build(tmp_path: Path, faulty_stages: None) -> None:
    # Placed after exact_dedup, so its copies reach the writer.
    recipe = _recipe(tmp_path, "copier", before="split")
    with pytest.raises(
        ConservationError, match=r"rows from nowhere in stage 'copier': source 'src': 30 in, 60 out"
    ):
        build(load_recipe(recipe), Registry(tmp_path / "reg"), show_progress=False)


def test_rows_with_an_unknown_split_are_rejected_not_dropped(tmp_path: Path, faulty_stages: None) -> None:
    recipe = _recipe(tmp_path, "relabel", rows=40, before="format")
    result = build(load_recipe(recipe), Registry(tmp_path / "reg"), show_progress=False)
    rejected = pq.read_table(result.path / "rejected" / "rejected.parquet").to_pylist()
    unknown = [r for r in rejected if r["reason"] == "unknown_split"]
    assert len(unknown) == 10 and all(r["stage"] == "write" for r in unknown)
    assert unknown[0]["detail"] == "split label 'validation' is neither 'train' nor 'test'"
    assert result.manifest["rows_by_source"] == {"src": {"read": 40, "published": 30, "rejected": 10}}


def test_replay_after_split_rows_are_rejected_with_a_reason(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "data.jsonl", [{"instruction": f"task {i}", "output": f"answer {i}"} for i in range(40)]
    )
    replay = [{"prompt": f"base prompt {i}", "completion": f"c {i}"} for i in range(100)]
    replay.insert(3, {"prompt": "p", "completion": 5})  # unusable: rejected by the replay stage
    write_jsonl(tmp_path / "base.jsonl", replay)
    replay_stage = {
        "type": "replay",
        "ratio": 0.25,
        "seed": 7,
        "source": {"name": "base-replay", "adapter": "prompt_completion", "paths": ["base.jsonl"]},
    }
    recipe = write_recipe(tmp_path, alpaca_source(), insert_stage(SIMPLE_STAGES, replay_stage, "format"))
    result = build(load_recipe(recipe), Registry(tmp_path / "reg"), show_progress=False)
    rejected = pq.read_table(result.path / "rejected" / "rejected.parquet").to_pylist()
    no_split = [r for r in rejected if r["reason"] == "no_split"]
    assert len(no_split) == 10 and {r["source"] for r in no_split} == {"base-replay"}
    assert "put `split` after every stage that adds rows" in no_split[0]["detail"]
    assert [r["source_key"] for r in rejected if r["stage"] == "replay"] == ["base.jsonl:4"]
    splits = result.manifest["splits"]
    assert all("base-replay" not in meta["per_source"] for meta in splits.values())
    # The replay source brought 11 rows into the build: the 10 mixed in and the unusable one.
    assert result.manifest["rows_by_source"]["base-replay"] == {"read": 11, "published": 0, "rejected": 11}
    replay_stats = next(s for s in result.manifest["stages"] if s["stage"] == "replay")
    assert replay_stats["rows_added"] == 11 and replay_stats["rows_out"] - replay_stats["rows_in"] == 10

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import alpaca_source, write_jsonl, write_recipe

from dataset_builder.cli import main
from dataset_builder.diff import diff
from dataset_builder.pipeline import build
from dataset_builder.recipe import load_recipe
from dataset_builder.registry import Registry


def test_diff_reports_planted_changes_exactly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = [{"instruction": f"task number {i}", "output": f"answer {i}"} for i in range(30)]
    write_jsonl(tmp_path / "data.jsonl", base)
    registry = Registry(tmp_path / "reg")
    v1 = build(
        load_recipe(write_recipe(tmp_path, alpaca_source(), version="1.0.0")), registry, show_progress=False
    )
    changed = [dict(r) for r in base]
    changed[3]["output"] = "a different answer"  # changed in place
    del changed[10]  # removed
    changed.append({"instruction": "a brand new task", "output": "new answer"})  # added
    write_jsonl(tmp_path / "data.jsonl", changed)
    v2 = build(
        load_recipe(write_recipe(tmp_path, alpaca_source(), version="1.1.0")), registry, show_progress=False
    )
    assert v2.manifest["previous_version"] == "1.0.0"
    d = diff(registry.get(v1.ref), registry.get(v2.ref))
    old_ids = {r["source_key"]: r["row_id"] for r in _all_rows(registry, v1.ref)}
    new_ids = {r["source_key"]: r["row_id"] for r in _all_rows(registry, v2.ref)}
    assert d.changed == [(old_ids["data.jsonl:4"], new_ids["data.jsonl:4"])]
    # Deleting line 11 moves every later row up one line: same content, same id, not "changed".
    assert d.removed == [old_ids["data.jsonl:11"]]
    assert d.added == [new_ids["data.jsonl:30"]]
    assert ("stage.load.rows_in", 30, 30) not in d.stats
    assert main(["--registry", str(registry.root), "diff", v1.ref, v2.ref]) == 0
    out = capsys.readouterr().out
    assert "+1 added, -1 removed, ~1 changed" in out


def _all_rows(registry: Registry, ref: str) -> list[dict]:
    import pyarrow.parquet as pq

    info = registry.get(ref)
    return [
        r for m in info.manifest["splits"].values() for r in pq.read_table(info.path / m["file"]).to_pylist()
    ]

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_jsonl

from dataset_builder.cli import main
from dataset_builder.publishing.pipeline import build
from dataset_builder.recipe.schema import load_recipe
from dataset_builder.registry.diff import Change, diff
from dataset_builder.registry.store import Registry
from dataset_builder.testing import alpaca_source, write_recipe


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
    assert d.changed == [
        Change(old_ids["data.jsonl:4"], new_ids["data.jsonl:4"], ("messages", "text", "completion"))
    ]
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


NO_NORMALIZE = """
[[stages]]
type = "quality"

[[stages]]
type = "split"
test_ratio = 0.2
seed = 1

[[stages]]
type = "format"
"""


def test_diff_finds_rows_that_kept_their_id_but_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Normalizing rewrites text without touching row ids (ids come from the source rows), as
    translating does: the rows it rewrote are changes, the rest are not."""
    rows = [{"instruction": f"task number {i}", "output": f"answer {i}"} for i in range(20)]
    for i in (2, 7, 11):
        rows[i]["output"] = f"answer {i}   "  # trailing spaces: normalize strips them
    write_jsonl(tmp_path / "data.jsonl", rows)
    registry = Registry(tmp_path / "reg")
    v1 = build(
        load_recipe(write_recipe(tmp_path, alpaca_source(), stages=NO_NORMALIZE, version="1.0.0")),
        registry,
        show_progress=False,
    )
    v2 = build(
        load_recipe(write_recipe(tmp_path, alpaca_source(), version="2.0.0")), registry, show_progress=False
    )
    old = {r["source_key"]: r for r in _all_rows(registry, v1.ref)}
    new = {r["source_key"]: r for r in _all_rows(registry, v2.ref)}
    rewritten = sorted(old[f"data.jsonl:{i + 1}"]["row_id"] for i in (2, 7, 11))
    assert all(old[k]["row_id"] == new[k]["row_id"] for k in old)  # every id kept
    d = diff(registry.get(v1.ref), registry.get(v2.ref))
    assert sorted(c.old_id for c in d.changed) == rewritten
    assert all(c.new_id == c.old_id and "messages" in c.columns for c in d.changed)
    assert d.added == d.removed == []

    assert (
        main(["--registry", str(registry.root), "diff", v1.ref, v2.ref, "--show", "1", "--width", "30"]) == 0
    )
    out = capsys.readouterr().out
    assert "+0 added, -0 removed, ~3 changed" in out
    first = sorted(rewritten)[0]
    key = next(k for k, r in old.items() if r["row_id"] == first)
    answer = old[key]["messages"][-1]["content"]
    # Side by side, the differing line marked: the old answer with its trailing spaces on the left,
    # the stripped one on the right; the unchanged prompt unmarked.
    assert f"    ! {'assistant: ' + answer:<30} | assistant: {answer.rstrip()}\n" in out
    prompt = old[key]["messages"][0]["content"]
    assert f"      {'user: ' + prompt:<30} | user: {prompt}\n" in out
    assert out.count("  changed ") == 1  # --show 1


def test_exact_duplicate_names_the_kept_row(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    rows = [{"instruction": f"task number {i}", "output": f"answer {i}"} for i in range(10)]
    rows[6] = dict(rows[2])  # line 7 repeats line 3: same source and content, so the same row id
    write_jsonl(tmp_path / "data.jsonl", rows)
    registry = Registry(tmp_path / "reg")
    result = build(load_recipe(write_recipe(tmp_path, alpaca_source())), registry, show_progress=False)
    rejected = pq.read_table(result.path / "rejected" / "rejected.parquet").to_pylist()
    (dup,) = [r for r in rejected if r["reason"] == "exact_duplicate"]
    assert dup["source_key"] == "data.jsonl:7"
    assert dup["duplicate_of"] == "src:data.jsonl:3"
    kept = [r for r in _all_rows(registry, result.ref) if r["source_key"] == "data.jsonl:3"]
    assert len(kept) == 1 and kept[0]["row_id"] == dup["row_id"]


def test_list_of_an_unknown_name_fails_and_suggests(
    sample_registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--registry", str(sample_registry.root), "list", "python-ru-sampel"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no dataset named 'python-ru-sampel'" in err[0]
    assert "did you mean: python-ru-sample?" in err[0]
    assert main(["--registry", str(sample_registry.root), "list", "python-ru-sample"]) == 0
    assert "python-ru-sample@0.1.0" in capsys.readouterr().out
    assert main(["--registry", str(sample_registry.root), "show", "nothing-like-it@1.0"]) == 1
    assert "did you mean" not in capsys.readouterr().err


def test_latest_resolves_for_show_verify_load_and_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import dataset_builder
    from trainer.training.qlora import dataset_provenance

    rows = [{"instruction": f"task number {i}", "output": f"answer {i}"} for i in range(12)]
    write_jsonl(tmp_path / "data.jsonl", rows)
    registry = Registry(tmp_path / "reg")
    # Built out of order; 0.10.0 is newer than 0.9.0, and a --limit trial build is never "latest".
    for version in ("0.9.0", "0.10.0", "0.2.0"):
        build(
            load_recipe(write_recipe(tmp_path, alpaca_source(), version=version)),
            registry,
            show_progress=False,
        )
    build(
        load_recipe(write_recipe(tmp_path, alpaca_source(), version="0.11.0")),
        registry,
        limit=5,
        show_progress=False,
    )
    root = str(registry.root)
    assert registry.get("t@latest").ref == "t@0.10.0"
    assert main(["--registry", root, "show", "t@latest"]) == 0
    assert capsys.readouterr().out.startswith("t@0.10.0 ")
    assert main(["--registry", root, "verify", "t@latest"]) == 0
    assert capsys.readouterr().out.startswith("t@0.10.0: OK")
    loaded = dataset_builder.load("t@latest", registry=root)
    expected = dataset_builder.load("t@0.10.0", registry=root)
    assert {s: loaded[s]["row_id"] for s in loaded} == {s: expected[s]["row_id"] for s in expected}
    _, provenance = dataset_provenance("t@latest", root)  # what `qlora-trainer train --dataset` calls
    assert provenance["version"] == "0.10.0"
    assert main(["--registry", root, "show", "nope@latest"]) == 1


def test_a_manifest_that_disagrees_with_its_folder_is_refused(
    sample_registry: Registry, tmp_path: Path
) -> None:
    import shutil

    from dataset_builder.errors import VerificationError

    registry = Registry(tmp_path / "reg")
    shutil.copytree(
        sample_registry.get("python-ru-sample@0.1.0").path, registry.root / "python-ru-sample" / "0.2.0"
    )
    with pytest.raises(VerificationError, match=r"says 'python-ru-sample'@'0\.1\.0', but lives at"):
        registry.get("python-ru-sample@0.2.0")


def test_version_flag() -> None:
    import subprocess
    import sys
    import tomllib

    from conftest import ROOT

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    proc = subprocess.run(
        [sys.executable, "-m", "dataset_builder", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0 and proc.stdout.strip() == f"dataset-builder {declared}"

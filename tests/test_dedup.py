from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import ROOT, write_jsonl
from test_stages import _rows, _run

from dataset_builder.cli import main
from dataset_builder.dedup.engine import find_near_duplicates
from dataset_builder.dedup.index import lsh_params
from dataset_builder.dedup.minhash import signatures
from dataset_builder.dedup.shingles import fold_text, jaccard, shingle
from dataset_builder.pipeline import build
from dataset_builder.recipe import load_recipe
from dataset_builder.registry import Registry

WORDS = [f"w{i}" for i in range(5000)]


def _doc(rng: random.Random, n: int = 120) -> list[str]:
    return [rng.choice(WORDS) for _ in range(n)]


def _variant(rng: random.Random, words: list[str], changes: int) -> list[str]:
    out = list(words)
    for i in rng.sample(range(len(out)), changes):
        out[i] = rng.choice(WORDS)
    return out


def test_folding_keeps_russian_letters_and_drops_punctuation() -> None:
    folded = fold_text(["Йод, ёлка — «Ёж»!", "snake_case.method()"]).to_pylist()
    assert folded[0].split() == ["йод", "ёлка", "ёж"]
    assert folded[1].split() == ["snake", "case", "method"]
    a, b = shingle(["йод и ёлка растут здесь", "иод и елка растут здесь"], n=2).hashes.reshape(2, -1)
    assert not set(a) & {b[0], b[1]}


def test_shingles_match_python_sets() -> None:
    rng = random.Random(0)
    docs = [" ".join(_doc(rng, rng.randint(0, 30))) for _ in range(200)]
    sh = shingle(docs, n=3)
    for i, text in enumerate(docs):
        words = text.split()
        expected = (
            {" ".join(words[k : k + 3]) for k in range(len(words) - 2)}
            if len(words) >= 3
            else ({" ".join(words)} if words else set())
        )
        assert len(set(sh.doc(i).tolist())) == len(expected)


def test_signature_agreement_estimates_jaccard() -> None:
    rng = random.Random(1)
    base = _doc(rng, 400)
    texts = [" ".join(base), " ".join(_variant(rng, base, 20))]
    sh = shingle(texts, n=5)
    sig = signatures(sh, num_perm=256)
    estimate = (sig[0] == sig[1]).mean()
    assert abs(estimate - jaccard(sh.doc(0), sh.doc(1))) < 0.08


def test_lsh_params_reach_the_threshold() -> None:
    bands, rows = lsh_params(0.8, 128)
    assert bands * rows <= 128 and 1 - (1 - 0.8**rows) ** bands >= 0.995


def test_planted_near_duplicates_are_found_exactly() -> None:
    rng = random.Random(2)
    texts, planted = [], set()
    for _ in range(300):
        words = _doc(rng)
        texts.append(" ".join(words))
        if rng.random() < 0.2:
            planted.add((len(texts) - 1, len(texts)))
            texts.append(" ".join(_variant(rng, words, 2)))
    pairs = find_near_duplicates(texts, threshold=0.8)
    truth = set()
    sh = shingle(texts, n=5)
    for x, y in planted:
        if jaccard(sh.doc(x), sh.doc(y)) >= 0.8:
            truth.add((x, y))
    assert {(x, y) for x, y, _ in pairs} == truth and len(truth) > 40
    assert all(j >= 0.8 for _, _, j in pairs)


def _planted_rows() -> list[dict]:
    rng = random.Random(3)
    pairs = []
    for i in range(60):
        words = _doc(rng, 80)
        pairs.append((" ".join(words), f"answer {i} " + " ".join(_doc(rng, 40))))
        if i % 10 == 0:
            pairs.append((" ".join(_variant(rng, words, 1)), pairs[-1][1] + " extra words here"))
    return _rows(*pairs)


def test_near_dedup_stage_drops_deterministically(tmp_path: Path) -> None:
    rows = _planted_rows()
    out, rejects, stats = _run("near_dedup", rows, tmp_path, keep="first")
    again, _, _ = _run("near_dedup", rows, tmp_path, keep="first")
    assert [r["row_id"] for r in out] == [r["row_id"] for r in again]
    assert len(rows) - len(out) == 6 == stats.counters["clusters"]
    rejected = rejects.table().to_pylist()
    assert all(r["reason"] == "near_duplicate" for r in rejected)
    kept_ids = {r["row_id"] for r in out}
    assert all(r["duplicate_of"] in kept_ids for r in rejected)
    # Keeping the longest answer keeps the later, longer variant instead.
    _, rejects_long, _ = _run("near_dedup", rows, tmp_path, keep="longest_answer")
    assert {r["row_id"] for r in rejects_long.table().to_pylist()} == {r["duplicate_of"] for r in rejected}


def test_mark_mode_keeps_clusters_on_one_side_of_the_split(tmp_path: Path) -> None:
    rows = _planted_rows()
    marked, rejects, _ = _run("near_dedup", rows, tmp_path, action="mark")
    assert len(marked) == len(rows) and rejects.count == 0
    assert sum(r["dup_cluster_size"] > 1 for r in marked) == 12
    for seed in range(5):
        out, _, _ = _run("split", marked, tmp_path, test_ratio=0.5, seed=seed)
        sides: dict[str, set[str]] = {}
        for r in out:
            sides.setdefault(r["dup_cluster"], set()).add(r["split"])
        assert all(len(s) == 1 for s in sides.values())


def test_decontaminate_removes_planted_overlaps(tmp_path: Path) -> None:
    rows = _rows(*[(f"task {i}: " + " ".join(_doc(random.Random(i), 30)), f"answer {i}") for i in range(40)])
    for i, row in enumerate(rows):
        row["split"] = "test" if i < 5 else "train"
    # Train row 10 copies a test prompt; train rows 20 and 21 contain external eval prompts.
    rows[10]["messages"][0]["content"] = rows[2]["messages"][0]["content"] + " please"
    humaneval = [
        {"task_id": "HumanEval/0", "prompt": rows[20]["messages"][0]["content"]},
        {"task_id": "HumanEval/1", "prompt": " ".join(rows[21]["messages"][0]["content"].split()[:15])},
    ]
    write_jsonl(tmp_path / "he.jsonl", humaneval)
    from dataset_builder.stages.base import RejectSink, StageContext, StageStats
    from dataset_builder.stages.decontaminate import Decontaminate, DecontaminateConfig

    stage = Decontaminate(DecontaminateConfig(eval_sets=[{"name": "humaneval", "paths": ["he.jsonl"]}]))
    ctx = StageContext("decontaminate", StageStats("decontaminate"), RejectSink(), tmp_path, False, tmp_path)
    out = [r for b in stage.run(iter([pa.Table.from_pylist(rows)]), ctx) for r in b.to_pylist()]
    removed = {r["source_key"] for r in ctx.rejects.table().to_pylist()}
    assert removed == {"f:11", "f:21", "f:22"}
    assert ctx.stats.counters["contaminated:test_split"] == 1
    assert ctx.stats.counters["contaminated:humaneval"] == 2
    assert len(out) == 37 and sum(r["split"] == "test" for r in out) == 5


def test_decontaminate_missing_eval_column_is_an_error(tmp_path: Path) -> None:
    from dataset_builder.errors import InputError

    write_jsonl(tmp_path / "he.jsonl", [{"task_id": "x", "question": "q"}])
    rows = _rows(("q", "a"))
    with pytest.raises(InputError, match=r"eval set 'he'.*no column 'prompt'"):
        _run_with_base("decontaminate", rows, tmp_path, eval_sets=[{"name": "he", "paths": ["he.jsonl"]}])


def _run_with_base(stage_type: str, rows: list[dict], base: Path, **settings):
    from dataset_builder.stages import stage_class
    from dataset_builder.stages.base import RejectSink, StageContext, StageStats

    cls = stage_class(stage_type)
    ctx = StageContext(stage_type, StageStats(stage_type), RejectSink(), base, False, base)
    return [
        r
        for b in cls(cls.Config(**settings)).run(iter([pa.Table.from_pylist(rows)]), ctx)
        for r in b.to_pylist()
    ]


def test_sample_build_dedups_and_dups_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = Registry(tmp_path / "reg")
    result = build(load_recipe(ROOT / "recipes" / "sample.toml"), registry, show_progress=False)
    stages = {s["stage"]: s for s in result.manifest["stages"]}
    assert stages["near_dedup"]["dropped"]["near_duplicate"] > 0
    assert stages["decontaminate"]["counters"]["contaminated:sample-eval-prompts"] >= 1
    assert main(["--registry", str(registry.root), "dups", result.ref, "--top", "1"]) == 0
    out = capsys.readouterr().out
    assert "KEPT" in out and "REMOVED" in out
    # Published clusters never straddle the split.
    import pyarrow.parquet as pq

    seen: dict[str, set[str]] = {}
    for split in ("train", "test"):
        for c in (
            pq.read_table(result.path / f"data/{split}-00000-of-00001.parquet")
            .column("dup_cluster")
            .to_pylist()
        ):
            seen.setdefault(c, set()).add(split)
    assert all(len(s) == 1 for s in seen.values())

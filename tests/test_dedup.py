from __future__ import annotations

import random
import re
import unicodedata
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import write_jsonl
from test_stages import _rows, _run

from dataset_builder.cli import main
from dataset_builder.publishing.pipeline import build
from dataset_builder.recipe.schema import load_recipe
from dataset_builder.registry.store import Registry
from dataset_builder.similarity.index import lsh_params
from dataset_builder.similarity.minhash import signatures
from dataset_builder.similarity.near_pairs import find_near_duplicates
from dataset_builder.similarity.shingles import fold_text, jaccard, shingle
from dataset_builder.testing import alpaca_source, write_recipe

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


def _python_grams(text: str, n: int) -> list[tuple[str, ...]]:
    """Word n-grams of a text, in order, computed in plain Python: lower case, every run of
    characters that are not letters or digits is a word break; a text shorter than n words is one
    gram of all its words."""
    words = re.sub(r"[\W_]+", " ", unicodedata.normalize("NFKC", text).lower()).split()
    if len(words) < n:
        return [tuple(words)] if words else []
    return [tuple(words[k : k + n]) for k in range(len(words) - n + 1)]


def test_shingles_match_python_ngrams_one_for_one() -> None:
    """Not just as many shingles as n-grams: shingle k of each document is the hash of its k-th
    n-gram, equal n-grams (in any document) hash equal and different ones differ."""
    rng = random.Random(0)
    vocabulary = [*WORDS[:300], "Ёлка", "йод", "snake_case", "x.y()", "«Цитата»", "Dict[str, int]"]
    docs = [" ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 30))) for _ in range(300)]
    docs += ["", "  ,,, ", "one", "Two words", "Й, ё!"]
    for n in (1, 3, 5):
        sh = shingle(docs, n=n)
        hash_of: dict[tuple[str, ...], int] = {}
        gram_of: dict[int, tuple[str, ...]] = {}
        for i, text in enumerate(docs):
            grams = _python_grams(text, n)
            hashes = sh.doc(i).tolist()
            assert len(hashes) == len(grams), (n, text)
            for gram, h in zip(grams, hashes, strict=True):
                assert hash_of.setdefault(gram, h) == h  # the same n-gram always hashes the same
                assert gram_of.setdefault(h, gram) == gram  # no two n-grams share a hash
        assert len(hash_of) > 500 if n > 1 else len(hash_of) > 250
    # Split into chunks on threads or not, the result is the same.
    single = shingle(docs, n=3, threads=1)
    assert (single.hashes == shingle(docs, n=3).hashes).all()


def test_exact_jaccard_agrees_with_python_sets() -> None:
    rng = random.Random(4)
    base = _doc(rng, 60)
    texts = [" ".join(base), " ".join(_variant(rng, base, 6)), " ".join(_doc(rng, 60))]
    sh = shingle(texts, n=5)
    sets = [set(_python_grams(t, 5)) for t in texts]
    for a in range(3):
        for b in range(3):
            expected = len(sets[a] & sets[b]) / len(sets[a] | sets[b])
            assert jaccard(sh.doc(a), sh.doc(b)) == pytest.approx(expected)


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
        _run_with_base(
            "decontaminate",
            rows,
            tmp_path,
            eval_sets=[{"name": "he", "paths": ["he.jsonl"]}],
            test_split=False,
        )


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


def _published(path: Path, split: str) -> list[dict]:
    import pyarrow.parquet as pq

    file = path / f"data/{split}-00000-of-00001.parquet"
    return pq.read_table(file).to_pylist() if file.exists() else []


def _pair_jaccard(a: list[dict], b: list[dict]) -> float:
    """Exact Jaccard of two conversations' user and assistant text, on Python sets of word 5-grams."""
    sets = [
        set(_python_grams("\n".join(t["content"] for t in m if t["role"] != "system"), 5)) for m in (a, b)
    ]
    return len(sets[0] & sets[1]) / len(sets[0] | sets[1]) if sets[0] | sets[1] else 1.0


def test_sample_build_dedups_and_dups_command(
    sample_registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow.parquet as pq

    info = sample_registry.get("python-ru-sample@0.1.0")
    stages = {s["stage"]: s for s in info.manifest["stages"]}
    assert stages["near_dedup"]["dropped"]["near_duplicate"] > 0
    assert stages["decontaminate"]["counters"]["contaminated:sample-eval-prompts"] >= 1
    assert main(["--registry", str(sample_registry.root), "dups", info.ref, "--top", "1"]) == 0
    out = capsys.readouterr().out
    assert "KEPT" in out and "REMOVED" in out
    # With action = "drop" each cluster publishes only its keeper, so the cluster column cannot
    # straddle by construction. What must hold instead, checked with sets computed here: every
    # removed row is a near-duplicate of a published keeper, and no published training row is a
    # near-duplicate of a published test row.
    train, test = _published(info.path, "train"), _published(info.path, "test")
    published = {r["row_id"]: r for r in train + test}
    removed = [
        r
        for r in pq.read_table(info.path / "rejected" / "rejected.parquet").to_pylist()
        if r["reason"] == "near_duplicate"
    ]
    assert len(removed) == stages["near_dedup"]["dropped"]["near_duplicate"]
    for row in removed:
        keeper = published[row["duplicate_of"]]
        assert _pair_jaccard(row["messages"], keeper["messages"]) >= 0.8
    assert test and max(_pair_jaccard(a["messages"], b["messages"]) for a in train for b in test) < 0.8


def test_marked_clusters_never_straddle_the_split(tmp_path: Path) -> None:
    """action = "mark" keeps every member: the split must keep each cluster on one side. The same
    build splitting by row id alone (no group column) is the control that shows it otherwise would not."""
    rng = random.Random(8)
    records = []
    for i in range(30):
        words = _doc(rng, 40)
        for copy in range(3):
            records.append({"instruction": " ".join(_variant(rng, words, copy)), "output": f"answer {i}"})
    write_jsonl(tmp_path / "data.jsonl", records)

    def published(group_column: str) -> list[tuple[str, list[dict], str]]:
        stages = (
            '[[stages]]\ntype = "near_dedup"\nfields = ["user"]\naction = "mark"\nthreshold = 0.8\n'
            f'[[stages]]\ntype = "split"\ntest_ratio = 0.5\nseed = 3\ngroup_column = "{group_column}"\n'
        )
        recipe = write_recipe(tmp_path, alpaca_source(), stages=stages, version=group_column)
        result = build(load_recipe(recipe), Registry(tmp_path / "reg"), show_progress=False)
        return [
            (r["row_id"], r["messages"], split)
            for split in ("train", "test")
            for r in _published(result.path, split)
        ]

    def straddling(rows: list[tuple[str, list[dict], str]]) -> int:
        """Pairs of near-duplicates (Jaccard of user turns >= 0.8, computed here) split apart."""
        users = [(m[0]["content"], split) for _, m, split in rows]
        grams = [set(_python_grams(u, 5)) for u, _ in users]
        return sum(
            1
            for a in range(len(users))
            for b in range(a + 1, len(users))
            if users[a][1] != users[b][1] and len(grams[a] & grams[b]) / len(grams[a] | grams[b]) >= 0.8
        )

    grouped = published("dup_cluster")
    assert len(grouped) == 90  # mark keeps every row
    assert straddling(grouped) == 0
    assert straddling(published("no_such_column")) > 0


def _spill_corpus(seed: int, docs: int) -> list[str]:
    """Random documents, a fifth of them followed by 1-3 variants, and one group of 40 copies
    (a bucket larger than the 32 anchors a bucket pairs with)."""
    rng = random.Random(seed)
    texts: list[str] = []
    while len(texts) < docs:
        words = _doc(rng, rng.randint(40, 90))
        texts.append(" ".join(words))
        if rng.random() < 0.2:
            for _ in range(rng.randint(1, 3)):
                texts.append(" ".join(_variant(rng, words, rng.randint(0, 4))))
    copied = texts[7]
    texts[100:140] = [copied] * 40
    return [*texts, "", "  ", "two words", "two words"]


def _components(n: int, pairs: set[tuple[int, int]]) -> list[list[int]]:
    """Connected components of more than one node, by breadth-first search."""
    edges: dict[int, set[int]] = {}
    for x, y in pairs:
        edges.setdefault(x, set()).add(y)
        edges.setdefault(y, set()).add(x)
    seen: set[int] = set()
    out = []
    for start in range(n):
        if start in seen or start not in edges:
            continue
        todo, members = [start], []
        seen.add(start)
        while todo:
            node = todo.pop()
            members.append(node)
            for other in edges[node] - seen:
                seen.add(other)
                todo.append(other)
        out.append(sorted(members))
    return out


def _exact_pairs(texts: list[str], threshold: float) -> dict[tuple[int, int], float]:
    """Every pair with Jaccard >= threshold on Python sets of word 5-grams: candidates from an
    inverted index of the grams (any pair sharing one), then exact set Jaccard."""
    grams = [set(_python_grams(t, 5)) for t in texts]
    by_gram: dict[tuple[str, ...], list[int]] = {}
    for i, g in enumerate(grams):
        for gram in g:
            by_gram.setdefault(gram, []).append(i)
    out = {}
    for docs in by_gram.values():
        for a in range(len(docs)):
            for b in range(a + 1, len(docs)):
                x, y = docs[a], docs[b]
                if (x, y) not in out:
                    out[(x, y)] = len(grams[x] & grams[y]) / len(grams[x] | grams[y])
    return {pair: j for pair, j in out.items() if j >= threshold}


def test_spilled_engine_matches_an_in_memory_computation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pairs and clusters of the spilled engine (many small spill chunks) against exact set
    Jaccard over every pair that shares a gram, on 3,000 documents."""
    import dataset_builder.similarity.near_pairs as engine

    monkeypatch.setattr(engine, "CHUNK_DOCS", 500)
    texts = _spill_corpus(5, 3000)
    expected = _exact_pairs(texts, 0.8)
    chunks = [texts[i : i + 137] for i in range(0, len(texts), 137)]
    found = find_near_duplicates(chunks, threshold=0.8, workdir=tmp_path)
    assert not list(tmp_path.iterdir())  # spill files removed
    got = {(x, y): j for x, y, j in found}
    # A bucket of 40 copies pairs each member with the first 32 only: every reported pair is a
    # true one with its exact Jaccard, and the clusters are exactly the true ones.
    assert set(got) <= set(expected) and all(got[p] == pytest.approx(expected[p]) for p in got)
    big = set(range(100, 140)) | {7}
    assert set(expected) - set(got) == {p for p in expected if p[0] in big and p[1] in big} - set(got)
    assert {p for p in expected if not (p[0] in big and p[1] in big)} <= set(got)
    assert _components(len(texts), set(got)) == _components(len(texts), set(expected))
    assert len(expected) > 800


def test_spilled_stage_keepers_match_an_in_memory_computation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stage (rows arriving in batches of 3, spilled) against clusters and keepers computed
    here from exact pairs, for each keeper policy."""
    import dataset_builder.similarity.near_pairs as engine

    monkeypatch.setattr(engine, "CHUNK_DOCS", 700)
    texts = _spill_corpus(6, 2000)
    rng = random.Random(6)
    answers = [f"answer {i}" + " more" * rng.randint(0, 8) for i in range(len(texts))]
    rows = _rows(*zip(texts, answers, strict=True))
    for i, row in enumerate(rows):
        row["source"] = "b" if i % 3 else "a"
    full = [f"{t}\n{a}" for t, a in zip(texts, answers, strict=True)]
    groups = _components(len(rows), set(_exact_pairs(full, 0.8)))
    assert len(groups) > 100

    def answer(i: int) -> int:
        return len(rows[i]["messages"][1]["content"])

    policies = {
        "first": lambda i: (i,),
        "longest_answer": lambda i: (-answer(i), i),
        "source_priority": lambda i: (0 if rows[i]["source"] == "b" else 1, i),
    }
    for keep, rank in policies.items():
        extra = {"source_priority": ["b", "a"]} if keep == "source_priority" else {}
        out, rejects, stats = _run("near_dedup", rows, tmp_path, keep=keep, **extra)
        keeper = {m: min(g, key=rank) for g in groups for m in g}
        removed = sorted(m for m, k in keeper.items() if m != k)
        gone = set(removed)
        assert [r["row_id"] for r in out] == [r["row_id"] for i, r in enumerate(rows) if i not in gone]
        rejected = rejects.table().to_pylist()
        assert [r["row_id"] for r in rejected] == [rows[i]["row_id"] for i in removed]
        assert [r["duplicate_of"] for r in rejected] == [rows[keeper[i]]["row_id"] for i in removed]
        size = {m: len(g) for g in groups for m in g}
        by_id = {r["row_id"]: r for r in out}
        for i, row in enumerate(rows):
            if row["row_id"] in by_id:
                published = by_id[row["row_id"]]
                assert published["dup_cluster"] == rows[keeper.get(i, i)]["row_id"]
                assert published["dup_cluster_size"] == size.get(i, 1)
        assert stats.counters["clusters"] == len(groups)
    assert not list(tmp_path.iterdir())

"""Decontamination at the paper's scale, and the containment defaults on real prompts.

Part 1 (scale): the decontaminate stage on 65,000 synthetic rows (most of them "translated":
their turns in another script, their English originals in ``source_messages``, so ~115k texts
are compared) against an eval set of 2,000 texts: 100 templated prompts that each occur, nearly
verbatim, in a thousand rows or more (a heavily contaminated corpus: hundreds of thousands of
matching pairs to verify) and 1,900 texts of random words that open like the corpus's prompts,
100 of them planted with one word changed into the originals of training rows. Each method at its
defaults: seconds, peak RSS, rows removed, planted rows found. The baseline is plain Python (a set
of word n-gram tuples per text, an inverted index over the eval n-grams) over the first
``--baseline-rows`` rows; ours must report the same (row, item, score) on those rows.

Part 2 (defaults, with ``--real FILE``, e.g. ../shared/data/codealpaca-new-4.5k/new_codealpaca.json):
500 real prompts become the eval set, the other rows the training rows, and 300 near-copies
(one or two words changed, a third inside a longer turn) are planted. For each containment
n-gram size and threshold: planted copies found, and unplanted rows flagged (in a set like this,
mostly paraphrases of the same task).

Part 1 also runs ``copy`` (the paper recipe's method), which has no plain-Python twin (its edit
counts are checked case by case in tests/test_decontaminate.py): it must remove every row that
containment removes for the 100 templated prompts (the heavy case), and take at most 1.2 times
containment's time (``--repeat N`` runs the methods N times, interleaved, and reports the median).

Part 3 (``--shared FILE``, by default ../shared/data/codealpaca-new-4.5k/new_codealpaca.json; skipped
with a message when absent): the shared rows cut in two halves, one half's prompts (instruction and
input) the eval set and the other half's rows the training rows, 50 copies of each of seven kinds
planted (quoted in a longer turn, one word dropped, and harder edits reported apart). Planted
copies removed per kind, and clean rows removed, for ``copy``, containment 0.6 and the lm-eval style
13-gram overlap. ``--phase tune`` is the half the settings were chosen on; ``report`` (default) the
other.

Goal: part 1 under 30 s per method on 2 cores (the shingling of every text included), the same
matches as the baseline; part 3: ``copy`` removes every quoted and one-word-dropped copy and at
most 1.5% of clean rows. Last line: JSON.

    python benchmarks/decontaminate.py [--rows 65000] [--repeat 1] [--real FILE] [--shared FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PLANTED = 100
TEMPLATED = 100  # eval texts that each occur, nearly verbatim, in a thousand rows or more


def _vocab(rng: random.Random, size: int = 20_000) -> list[str]:
    return [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9)))
        for _ in range(size)
    ]


def make_input(rows: int, folder: Path) -> dict:
    """Rows (JSON) and an eval set (JSONL) on disk; which rows hold which planted item."""
    from synthetic_corpus import generate

    from dataset_builder.rows import make_row_id

    rng = random.Random(7)
    corpus = generate(rows, seed=0)
    out = []
    for rec in corpus["alpaca"]:
        user = rec["instruction"] + (f"\n{rec['input']}" if rec["input"] else "")
        out.append(("alpaca", "en", [("user", user), ("assistant", rec["output"])]))
    for rec in corpus["chat_rounds"]:
        turns = [("user" if t["role"] == "human" else "assistant", t["content"]) for t in rec["chat_rounds"]]
        out.append(("chat", "en", turns))
    for rec in corpus["ru_qa"]:
        out.append(("ru", "ru", [("user", rec["вопрос"]), ("assistant", rec["ответ"])]))

    vocab = _vocab(rng)
    # Every random text opens like the corpus's own prompts, so common phrases are shared with tens
    # of thousands of rows: candidates must come from each text's rare n-grams, not from those.
    opener = "Write a Python function that"
    random_texts = [f"{opener} " + " ".join(rng.choices(vocab, k=rng.randint(30, 150))) for _ in range(1_900)]
    templated = [r["instruction"] for r in generate(2_000, seed=1)["alpaca"][:TEMPLATED]]
    evals = [{"task_id": f"T/{i}", "prompt": t} for i, t in enumerate(templated + random_texts)]
    english = [i for i, r in enumerate(out) if r[1] == "en"]
    planted = {}
    for k, i in enumerate(rng.sample(english, PLANTED)):
        item = TEMPLATED + k
        words = random_texts[k].split()
        words[rng.randrange(len(words))] = rng.choice(vocab)
        source, lang, turns = out[i]
        out[i] = (source, lang, [("user", turns[0][1] + "\n\n" + " ".join(words)), *turns[1:]])
        planted[i] = f"T/{item}"

    table = []
    for i, (source, lang, turns) in enumerate(out):
        messages = [{"role": r, "content": c} for r, c in turns]
        row = {"row_id": make_row_id(source, messages), "source": source, "source_key": f":{i}",
               "lang": lang, "messages": messages, "source_messages": None, "source_lang": None}  # fmt: skip
        if lang == "en":
            # A stand-in translation in another script: every word reversed and upper-cased.
            fake = [{"role": r, "content": " ".join(w[::-1].upper() for w in c.split())} for r, c in turns]
            row.update(lang="xx", messages=fake, source_messages=messages, source_lang="en")
        table.append(row)
    (folder / "rows.json").write_text(json.dumps(table), encoding="utf-8")
    with (folder / "eval.jsonl").open("w", encoding="utf-8") as fh:
        for e in evals:
            fh.write(json.dumps(e) + "\n")
    (folder / "planted.json").write_text(json.dumps(planted), encoding="utf-8")
    return {"rows": len(table), "eval_texts": len(evals), "planted": len(planted)}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(folder: Path, method: str, limit: int | None) -> dict:
    import pyarrow as pa

    from dataset_builder.rows import MESSAGES_TYPE
    from dataset_builder.stages.base import RejectSink, StageContext, StageStats
    from dataset_builder.stages.decontaminate import Decontaminate, DecontaminateConfig

    rows = json.loads((folder / "rows.json").read_text(encoding="utf-8"))[:limit]
    schema = pa.schema([("row_id", pa.string()), ("source", pa.string()), ("source_key", pa.string()),
                        ("lang", pa.string()), ("messages", MESSAGES_TYPE), ("source_messages", MESSAGES_TYPE),
                        ("source_lang", pa.string())])  # fmt: skip
    table = pa.Table.from_pylist(rows, schema=schema)
    cfg = DecontaminateConfig(method=method, test_split=False,
                              eval_sets=[{"name": "eval", "paths": ["eval.jsonl"], "id_column": "task_id"}])  # fmt: skip
    options = {"alpaca": {"language": "en"}, "chat": {"language": "en"}, "ru": {"language": "ru"}}
    ctx = StageContext(
        "decontaminate", StageStats("decontaminate"), RejectSink(), folder, False, folder, options
    )
    start = time.perf_counter()
    kept = sum(b.num_rows for b in Decontaminate(cfg).run(iter([table]), ctx))
    seconds = time.perf_counter() - start
    rejected = ctx.rejects.table().to_pylist()
    planted = json.loads((folder / "planted.json").read_text(encoding="utf-8"))
    removed = {r["source_key"] for r in rejected}
    found = sum(1 for i in planted if f":{i}" in removed)
    in_scope = sum(1 for i in planted if limit is None or int(i) < limit)
    return {"method": method, "seconds": round(seconds, 2), "peak_rss_mb": round(peak_rss_mb()),
            "rows": len(rows), "kept": kept, "removed": len(rejected), "planted_found": found,
            "planted": in_scope, "settings": cfg.settings(),
            "matches": sorted([r["source_key"], r["detail"]] for r in rejected)}  # fmt: skip


def _fold(text: str) -> list[str]:
    import unicodedata

    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(c if c.isalnum() else " " for c in text).split()


def _grams(words: list[str], n: int) -> set[tuple[str, ...]]:
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def run_baseline(folder: Path, method: str, limit: int) -> dict:
    """Plain Python over the same rows: sets of n-gram tuples, an inverted index over the eval
    n-grams, the same scores and the same report of each removed row's best item."""
    from dataset_builder.stages.decontaminate import DecontaminateConfig

    settings = DecontaminateConfig(method=method).settings()
    n, floor = settings["ngram"], settings["min_eval_words"]
    rows = json.loads((folder / "rows.json").read_text(encoding="utf-8"))[:limit]
    evals = [json.loads(line) for line in (folder / "eval.jsonl").read_text(encoding="utf-8").splitlines()]
    start = time.perf_counter()
    items = []
    for e in evals:
        words = _fold(e["prompt"])
        if len(words) >= floor:
            items.append((e["task_id"], min(n, len(words)), _grams(words, min(n, len(words)))))
    index: dict[int, dict[tuple[str, ...], list[int]]] = {}
    for k, (_, size, grams) in enumerate(items):
        for g in grams:
            index.setdefault(size, {}).setdefault(g, []).append(k)
    matches = []
    for row in rows:
        best = None
        for turns in (row["messages"], row["source_messages"]):
            if turns is None:
                continue
            words = _fold("\n".join(t["content"] for t in turns))
            for size, postings in index.items():
                grams = _grams(words, size)
                shared = Counter(k for g in grams for k in postings.get(g, ()))
                for k, s in shared.items():
                    m = len(items[k][2])
                    if method == "ngram":
                        score, ok = s, s >= min(settings["min_overlap"], m)
                    elif method == "containment":
                        score = s / m
                        ok = score >= settings["threshold"]
                    else:
                        score = s / (m + len(grams) - s)
                        ok = score >= settings["threshold"]
                    if ok and (best is None or (-score, k) < (-best[0], best[1])):
                        best = (score, k)
        if best is not None:
            matches.append((row["source_key"], items[best[1]][0], round(best[0], 3)))
    return {"seconds": round(time.perf_counter() - start, 2), "rows": len(rows), "matches": sorted(matches)}


def _parse(detail: str) -> tuple[str, float]:
    item = detail.split(" item ", 1)[1].split(":", 1)[0]
    number = next(w for w in detail.replace(",", " ").split() if w[0].isdigit())
    return item, round(float(number), 3)


def tune(real: Path) -> list[dict]:
    """Containment sizes and thresholds on real prompts, near-copies planted."""
    import numpy as np

    from dataset_builder.similarity.overlap import shared_shingles
    from dataset_builder.similarity.shingles import shingle

    data = json.loads(real.read_text(encoding="utf-8"))
    rng = random.Random(0)
    rng.shuffle(data)

    def prompt(r: dict) -> str:
        return r["instruction"] + ("\n" + r["input"] if r.get("input", "").strip() else "")

    evals = [prompt(r) for r in data[:500]]
    train = [prompt(r) + "\n" + r["output"] for r in data[500:]]
    vocab = sorted({w for t in train for w in t.split() if w.isalpha()})
    planted = []
    for i in range(300):
        words = evals[i].split(" ")
        for _ in range(rng.choice([1, 1, 2])):
            words[rng.randrange(len(words))] = rng.choice(vocab)
        text = " ".join(words)
        if i % 3 == 0:
            text = "Please help me with this task. " + text + " Thank you very much for your help!"
        planted.append(text + "\nsome answer here")
    docs = train + planted
    out = []
    for n in (3, 4, 5, 8):
        q, d = shingle(evals, n=n), shingle(docs, n=n)
        found = shared_shingles(q, d, np.ones(len(evals), np.int64))
        share = found.shared / found.query_size[found.query]
        for t in (0.5, 0.6, 0.65, 0.7, 0.8):
            hit = share >= t
            pairs = set(zip(found.doc[hit].tolist(), found.query[hit].tolist(), strict=True))
            recall = sum((len(train) + i, i) in pairs for i in range(len(planted))) / len(planted)
            flagged = len({x for x, _ in pairs if x < len(train)})
            out.append({"ngram": n, "threshold": t, "planted_found": round(recall, 3),
                        "unplanted_rows_flagged": flagged, "rows": len(train)})  # fmt: skip
    return out


# -- part 3: copies and shared phrasing on real rows ------------------------------------------

SHARED = ROOT.parent / "shared" / "data" / "codealpaca-new-4.5k" / "new_codealpaca.json"
PREAMBLES = ["I am preparing for an interview and got this task:", "Can you help me with my homework?",
             "Here is an exercise from our course.", "My teacher gave us the following problem.",
             "Please solve this and explain each step:", "Quick question from work."]  # fmt: skip
CLOSINGS = ["Thanks in advance!", "Please explain your answer.", "Keep it short.", "I am stuck on this.", "",
            "Use comments in the code."]  # fmt: skip
# Words a person editing a prompt would swap for one meaning the same.
SYNONYMS = {"function": "method", "write": "create", "create": "write", "returns": "outputs", "given": "provided",
            "list": "array", "number": "integer", "string": "text", "program": "script", "script": "program",
            "implement": "build", "calculates": "computes", "calculate": "compute", "compute": "calculate",
            "find": "locate", "design": "develop", "develop": "design", "takes": "accepts", "accepts": "takes",
            "prints": "outputs", "check": "verify", "checks": "verifies", "determine": "decide",
            "input": "argument", "sum": "total", "largest": "biggest", "smallest": "tiniest", "count": "number",
            "reverse": "invert", "reverses": "inverts", "explain": "describe", "output": "result",
            "value": "number", "array": "list", "method": "function", "provide": "give", "simple": "basic",
            "basic": "simple"}  # fmt: skip
# quoted and dropped are the goal; the others are harder edits, reported apart (new kinds go last,
# so the copies planted for the earlier ones stay the same).
KINDS = ["quoted", "dropped", "swapped", "synonym", "reordered", "case_punct", "dropped_and_synonym",
         "input_first", "sentences_swapped"]  # fmt: skip


def _prompt(rec: dict) -> str:
    return rec["instruction"] + ("\n" + rec["input"] if rec["input"].strip() else "")


def _edited(kind: str, rec: dict, rng: random.Random) -> str | None:
    """A copy of an eval prompt (instruction and input) edited as ``kind`` says; None: not applicable."""
    import re

    text = _prompt(rec)
    if kind == "quoted":
        return f"{rng.choice(PREAMBLES)} {text} {rng.choice(CLOSINGS)}".strip()
    if kind == "case_punct":
        # Upper case, sentence punctuation and quotes at word edges dropped (inside a word, as in
        # file.txt or it's, a person would keep them).
        return re.sub(r"[.,?!:;]+(?=\s|$)|(?<!\S)['\"]+|['\"]+(?!\S)", "", text).upper()
    if kind == "reordered":  # the input first, or the instruction's sentences in another order
        if rec["input"].strip():
            return rec["input"].strip() + "\n" + rec["instruction"]
        sentences = re.split(r"(?<=[.?!])\s+", rec["instruction"].strip())
        return " ".join(sentences[1:] + sentences[:1]) if len(sentences) > 1 else None
    if kind == "input_first":  # the input before the instruction, both whole
        return rec["input"].strip() + "\n" + rec["instruction"] if rec["input"].strip() else None
    if kind == "sentences_swapped":  # two sentences of the instruction trade places, the input after
        sentences = re.split(r"(?<=[.?!])\s+", rec["instruction"].strip())
        if len(sentences) < 2:
            return None
        a, b = rng.sample(range(len(sentences)), 2)
        sentences[a], sentences[b] = sentences[b], sentences[a]
        return " ".join(sentences) + ("\n" + rec["input"] if rec["input"].strip() else "")
    words = text.split()  # words as a person sees them: whitespace-separated
    if kind == "dropped":
        del words[rng.randrange(len(words))]
    elif kind == "swapped":
        a, b = rng.sample(range(len(words)), 2)
        words[a], words[b] = words[b], words[a]
    else:
        options = [i for i, w in enumerate(words) if w.lower() in SYNONYMS]
        if not options:
            return None
        i = rng.choice(options)
        words[i] = SYNONYMS[words[i].lower()]
        if kind == "dropped_and_synonym":
            del words[rng.choice([k for k in range(len(words)) if k != i])]
    return " ".join(words)


def shared_cases(path: Path, per_kind: int = 50, seed: int = 18) -> list[tuple[str, list[dict], list[dict]]]:
    """The shared rows cut in two halves: ``tune`` takes the first half's prompts (instruction and
    input) as the eval set and the second half's rows as training rows, ``report`` the other way
    round. Into each training half go ``per_kind`` copies of each kind, each of a different eval item."""
    data = json.loads(path.read_text(encoding="utf-8"))
    order = list(range(len(data)))
    random.Random(seed).shuffle(order)
    halves = order[: len(order) // 2], order[len(order) // 2 :]
    cases = []
    for phase, evals, train in (("tune", *halves), ("report", *halves[::-1])):
        rng = random.Random(f"{seed}-{phase}")
        items = [{"task_id": f"E/{i}", "instruction": data[i]["instruction"], "input": data[i]["input"]}
                 for i in evals]  # fmt: skip
        rows = [{"key": f"clean:{i}", "user": _prompt(data[i]), "answer": data[i]["output"]} for i in train]
        pool = list(evals)
        rng.shuffle(pool)
        for kind in KINDS:
            made = 0
            while made < per_kind:
                i = pool.pop()
                text = _edited(kind, data[i], rng)
                if text is None or (text == _prompt(data[i]) and kind != "quoted"):
                    continue
                rows.append({"key": f"{kind}:E/{i}", "user": text, "answer": data[i]["output"]})
                made += 1
        cases.append((phase, items, rows))
    return cases


def run_shared_case(items: list[dict], rows: list[dict], settings: dict, folder: Path) -> dict:
    """The decontaminate stage with ``settings`` on one case: planted copies removed (naming their
    item) per kind, and clean rows removed."""
    import pyarrow as pa

    from dataset_builder.rows import MESSAGES_TYPE, make_row_id
    from dataset_builder.stages.base import RejectSink, StageContext, StageStats
    from dataset_builder.stages.decontaminate import Decontaminate, DecontaminateConfig

    with (folder / "items.jsonl").open("w", encoding="utf-8") as fh:
        for item in items:
            fh.write(json.dumps(item) + "\n")
    table = []
    for r in rows:
        messages = [{"role": "user", "content": r["user"]}, {"role": "assistant", "content": r["answer"]}]
        table.append({"row_id": make_row_id("rows", messages), "source": "rows", "source_key": r["key"],
                      "lang": "en", "messages": messages})  # fmt: skip
    schema = pa.schema([("row_id", pa.string()), ("source", pa.string()), ("source_key", pa.string()),
                        ("lang", pa.string()), ("messages", MESSAGES_TYPE)])  # fmt: skip
    cfg = DecontaminateConfig(**settings, test_split=False, eval_sets=[
        {"name": "half", "paths": ["items.jsonl"], "columns": ["instruction", "input"], "id_column": "task_id"}])  # fmt: skip
    ctx = StageContext("decontaminate", StageStats("decontaminate"), RejectSink(), folder, False, folder,
                       {"rows": {"language": "en"}})  # fmt: skip
    start = time.perf_counter()
    for _ in Decontaminate(cfg).run(iter([pa.Table.from_pylist(table, schema=schema)]), ctx):
        pass
    seconds = time.perf_counter() - start
    removed = {r["source_key"]: r["detail"] for r in ctx.rejects.table().to_pylist()}
    clean = [r["key"] for r in rows if r["key"].startswith("clean:")]
    out: dict = {"settings": cfg.settings(), "seconds": round(seconds, 2),
                 "clean_removed": sum(k in removed for k in clean), "clean_rows": len(clean)}  # fmt: skip
    for kind in KINDS:
        keys = [r["key"] for r in rows if r["key"].startswith(f"{kind}:")]
        out[kind] = {"planted": len(keys),
                     "removed": sum(k in removed and f"item {k.split(':', 1)[1]}:" in removed[k] for k in keys)}  # fmt: skip
    out["details"] = removed
    return out


def shared_part(path: Path, phases: tuple[str, ...], methods: dict[str, dict]) -> dict:
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for phase, items, rows in shared_cases(path):
            if phase not in phases:
                continue
            for name, settings in methods.items():
                r = run_shared_case(items, rows, settings, Path(tmp))
                r.pop("details")
                results[f"{phase}:{name}"] = r
                share = 100 * r["clean_removed"] / r["clean_rows"]
                kinds = ", ".join(f"{k} {r[k]['removed']}/{r[k]['planted']}" for k in KINDS)
                print(f"{phase} {name}: clean removed {r['clean_removed']}/{r['clean_rows']} ({share:.2f}%); "
                      f"planted removed: {kinds} ({r['seconds']} s)")  # fmt: skip
    return results


SHARED_METHODS = {
    "copy": {"method": "copy"},
    "containment-0.6": {"method": "containment"},
    "ngram-13": {"method": "ngram"},
}


def _templated(matches: list[list[str]]) -> set[str]:
    """Rows removed naming one of the templated prompts (the heavily contaminated part)."""
    return {k for k, d in matches if int(d.split(" item T/", 1)[1].split(":", 1)[0]) < TEMPLATED}


def scale_part(args: argparse.Namespace, methods: list[str]) -> dict:
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results["input"] = make_input(args.rows, folder)
        print(f"input: {results['input']}")
        runs: dict[str, list[dict]] = {m: [] for m in methods}
        for _ in range(args.repeat):  # interleaved, so a change of load on the machine hits every method
            for method in methods:
                cmd = [sys.executable, __file__, "--_child", str(folder), method, "0"]
                runs[method].append(
                    json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
                )
        # No plain-Python twin for the copy alignment (tests/test_decontaminate.py checks it case by
        # case); on this input it must remove every row containment removes for the templated
        # prompts, each of them copied into a thousand rows or more.
        heavy = _templated(runs["containment"][-1]["matches"]) if "containment" in runs else set()
        for method in methods:
            ours = runs[method][-1]
            times = sorted(r["seconds"] for r in runs[method])
            ours["seconds"], ours["all_seconds"] = times[len(times) // 2], times
            matches = ours.pop("matches")
            if method == "copy":
                ours["heavy_case"] = {"rows": len(heavy), "removed": len(heavy & {k for k, _ in matches})}
                print(f"copy: {ours['seconds']} s (runs {times}), {ours['peak_rss_mb']} MB, removed {ours['removed']} "
                      f"of {ours['rows']}, planted found {ours['planted_found']}/{ours['planted']}; heavy case "
                      f"(rows containment removes for the templated prompts): {ours['heavy_case']['removed']} of "
                      f"{ours['heavy_case']['rows']} removed")  # fmt: skip
                results[method] = ours
                continue
            small = run_ours(folder, method, args.baseline_rows)
            base = run_baseline(folder, method, args.baseline_rows)
            same = sorted([k, *_parse(d)] for k, d in small["matches"]) == [list(m) for m in base["matches"]]
            ours["baseline"] = {"rows": base["rows"], "seconds": base["seconds"],
                                "ours_seconds": small["seconds"], "same_matches": same,
                                "matches": len(base["matches"])}  # fmt: skip
            results[method] = ours
            print(f"{method}: {ours['seconds']} s (runs {times}), {ours['peak_rss_mb']} MB, removed {ours['removed']} "
                  f"of {ours['rows']}, planted found {ours['planted_found']}/{ours['planted']}; baseline on "
                  f"{base['rows']} rows {base['seconds']} s vs ours {small['seconds']} s, same: {same}")  # fmt: skip
    if "copy" in results and "containment" in results:
        ratio = results["copy"]["seconds"] / results["containment"]["seconds"]
        results["copy_vs_containment_time"] = round(ratio, 3)
        print(f"copy takes {ratio:.2f}x the time of containment (the method it replaces in the paper recipe)")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=65_000)
    parser.add_argument("--baseline-rows", type=int, default=3_000)
    parser.add_argument("--methods", default="containment,ngram,minhash,copy", help="part 1's methods")
    parser.add_argument("--repeat", type=int, default=1, help="time each method of part 1 this many times")
    parser.add_argument("--skip-scale", action="store_true", help="skip part 1")
    parser.add_argument("--real", type=Path)
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared rows for part 3 (JSON)")
    parser.add_argument("--phase", choices=["report", "tune"], default="report",
                        help="part 3's half: tune (used to choose the settings) or report")  # fmt: skip
    parser.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:  # one measurement in its own process, so peak RSS is its own
        folder, method, limit = Path(args._child[0]), args._child[1], int(args._child[2])
        print(json.dumps(run_ours(folder, method, limit or None)))
        return

    results: dict = {} if args.skip_scale else scale_part(args, args.methods.split(","))
    if args.real:
        results["containment_grid"] = tune(args.real)
        for r in results["containment_grid"]:
            print(f"containment n={r['ngram']} t={r['threshold']}: planted found {r['planted_found']}, "
                  f"unplanted rows flagged {r['unplanted_rows_flagged']} of {r['rows']}")  # fmt: skip
    if args.shared.is_file():
        results["shared"] = shared_part(args.shared, (args.phase,), SHARED_METHODS)
    else:
        print(f"part 3 skipped: no shared rows at {args.shared} (pass --shared FILE, e.g. "
              "../shared/data/codealpaca-new-4.5k/new_codealpaca.json)")  # fmt: skip
        results["shared"] = None
    print(json.dumps(results))


if __name__ == "__main__":
    main()

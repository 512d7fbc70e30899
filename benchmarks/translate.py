"""Translation speed and code safety: our engine and stage against argostranslate, same package.

    python benchmarks/translate.py [--package PATH.argosmodel] [--sentences 1000] [--rows 300]

Without --package a tiny package is built offline. In one run, on the same package and beam:
  (a) sentence level: N prose sentences through ``argostranslate.translate.translate`` one call
      each, and through our engine in one batched call: sentences/s, ratio, share of identical
      outputs (exactly, and after argostranslate's own "_" -> " " replacement);
  (b) row level: N rows with code, argostranslate the way a curator would (one translate() call
      per text field) against our translate stage (cache off): wall time, ratio, share of all N
      rows whose code came through intact, judged by dataset_builder.translation.verify (not by the
      segmenter the stage uses), a row the stage rejected counting as not intact;
  plus the projected hours for the 49.8k-row corpus at the measured rates, beam 4 and greedy.
Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

CORPUS_ROWS = 49_800


def prose_sentences(n: int, seed: int = 0) -> list[str]:
    from synthetic_corpus import EN_EXPLANATIONS, EN_OPENERS, FILLER_EN, SNIPPETS

    rng = random.Random(seed)
    fillers = [s.strip() + "." for s in FILLER_EN.split(".") if s.strip()]
    out: list[str] = []
    while len(out) < n:
        s = rng.choice(SNIPPETS)
        kind = rng.random()
        if kind < 0.4:
            text = rng.choice(EN_OPENERS).format(en=s.en).split(". ")[0]
        elif kind < 0.7:
            text = (
                rng.choice(EN_EXPLANATIONS).format(name="the function", en=s.en).split("; ")[0].split(". ")[0]
            )
        else:
            text = rng.choice(fillers)
        text = f"{text.rstrip('.?')} for {rng.randint(2, 99_999)} inputs."
        out.append(text.replace("_", " "))
    return out


def code_rows(n: int, seed: int = 0, rows_file: Path | None = None) -> list[list[str]]:
    """Text fields of N rows: real Alpaca-style rows from ``rows_file`` (JSON array or JSONL with
    instruction/input/output or response), else synthetic ones (whose templated prose repeats far
    more than real data, which flatters any sentence-level dedup)."""
    if rows_file is not None:
        text = rows_file.read_text(encoding="utf-8")
        records = (
            json.loads(text)
            if text.lstrip().startswith("[")
            else [json.loads(x) for x in text.splitlines() if x.strip()]
        )
        rng = random.Random(seed)
        picked = rng.sample(records, min(n, len(records)))
        return [
            [
                f
                for f in (
                    r.get("instruction", ""),
                    r.get("input", ""),
                    r.get("output") or r.get("response", ""),
                )
                if f
            ]
            for r in picked
        ]
    from synthetic_corpus import generate

    corpus = generate(n * 2, seed)
    rows = []
    for rec in corpus["alpaca"] + corpus["chat_rounds"]:
        if "instruction" in rec:
            fields = [rec["instruction"], rec["input"], rec["output"]]
        else:
            fields = [t["content"] for t in rec["chat_rounds"]]
        rows.append([f for f in fields if f])
        if len(rows) == n:
            break
    return rows


def code_intact(source: str, translated: str) -> bool:
    """By the independent verifier, which shares no code with the segmenter under test."""
    from dataset_builder.translation.verify import verify_turn

    return verify_turn(source, translated) is None


def run(
    package_path: Path | None, n_sentences: int, n_rows: int, work: Path, rows_file: Path | None = None
) -> dict:
    from dataset_builder.translation import packages

    if package_path is None:
        from dataset_builder.testing import build_tiny_argos_package

        package_path = build_tiny_argos_package(work / "tiny")
    pkg_dir = work / "packages"
    os.environ["ARGOS_PACKAGES_DIR"] = str(pkg_dir)
    package = packages.install(package_path, pkg_dir)
    import argostranslate.translate

    from dataset_builder.translation.engine import DecodeSettings, Engine

    # (a) sentence level
    sentences = prose_sentences(n_sentences)
    argostranslate.translate.translate("Warm up.", package.from_code, package.to_code)
    start = time.perf_counter()
    theirs = [argostranslate.translate.translate(s, package.from_code, package.to_code) for s in sentences]
    argos_s = time.perf_counter() - start
    engine = Engine(package)
    engine.translate(["Warm up."])
    start = time.perf_counter()
    ours = engine.translate(sentences)
    ours_s = time.perf_counter() - start
    greedy = Engine(package, DecodeSettings(beam_size=1))
    start = time.perf_counter()
    greedy.translate(sentences)
    greedy_s = time.perf_counter() - start
    identical = sum(a == b for a, b in zip(ours, theirs, strict=True)) / len(sentences)
    identical_modulo = sum(a.replace("_", " ") == b for a, b in zip(ours, theirs, strict=True)) / len(
        sentences
    )

    # (b) row level
    rows = code_rows(n_rows, rows_file=rows_file)
    start = time.perf_counter()
    argos_rows = [
        [argostranslate.translate.translate(f, package.from_code, package.to_code) for f in r] for r in rows
    ]
    argos_rows_s = time.perf_counter() - start
    argos_intact = sum(
        all(code_intact(s, t) for s, t in zip(r, out, strict=True))
        for r, out in zip(rows, argos_rows, strict=True)
    )

    import pyarrow as pa

    from dataset_builder.rows import CANONICAL_SCHEMA, make_row_id
    from dataset_builder.stages.base import RejectSink, StageContext, StageStats
    from dataset_builder.stages.translate import Translate, TranslateConfig

    table_rows = []
    for i, fields in enumerate(rows):
        messages = [
            {"role": "user", "content": "\n".join(fields[:-1])},
            {"role": "assistant", "content": fields[-1]},
        ]
        table_rows.append({"row_id": make_row_id("b", messages), "source": "b", "source_key": str(i), "lang": "en",
                           "messages": messages})  # fmt: skip
    cfg = TranslateConfig(packages_dir=str(pkg_dir), cache=False, detect_language=False, verify_language=False,
                          min_length_ratio=0.0, max_length_ratio=1e9, check_repetition=False)  # fmt: skip
    ctx = StageContext("translate", StageStats("translate"), RejectSink(), work, False, work)
    table = pa.Table.from_pylist(table_rows, schema=CANONICAL_SCHEMA)
    start = time.perf_counter()
    out = [r for b in Translate(cfg).run(iter([table]), ctx) for r in b.to_pylist()]
    ours_rows_s = time.perf_counter() - start
    # Over every input row: a row the stage rejected is not counted as intact.
    by_id = {row["row_id"]: row for row in table_rows}
    ours_intact = sum(
        all(
            code_intact(a["content"], b["content"])
            for a, b in zip(by_id[got["row_id"]]["messages"], got["messages"], strict=True)
        )
        for got in out
    )
    ours_rejected = ctx.rejects.count
    sent_per_row = ctx.stats.counters.get("sentences_translated", 0) / len(rows)
    all_sentences = sum(len(_sentences_of(r)) for r in table_rows) / len(rows)
    beam_rate = n_sentences / ours_s
    greedy_rate = n_sentences / greedy_s
    return {
        "package": package.describe(),
        "sentences": n_sentences,
        "argos_sentences_per_s": round(n_sentences / argos_s, 2),
        "ours_sentences_per_s": round(beam_rate, 2),
        "ours_greedy_sentences_per_s": round(greedy_rate, 2),
        "sentence_speedup": round(argos_s / ours_s, 2),
        "identical_share": round(identical, 4),
        "identical_share_after_argos_underscore_replacement": round(identical_modulo, 4),
        "rows": n_rows,
        "argos_rows_seconds": round(argos_rows_s, 2),
        "ours_rows_seconds": round(ours_rows_s, 2),
        "row_speedup": round(argos_rows_s / ours_rows_s, 2),
        "argos_code_intact_share": round(argos_intact / n_rows, 4),
        "ours_code_intact_share": round(ours_intact / len(table_rows), 4),
        "ours_rows_rejected": ours_rejected,
        "rows_from": str(rows_file) if rows_file else "synthetic",
        "model_sentences_per_row": round(sent_per_row, 2),
        "prose_sentences_per_row_before_dedup": round(all_sentences, 2),
        "projected_hours_49_8k_beam4": round(CORPUS_ROWS * sent_per_row / beam_rate / 3600, 2),
        "projected_hours_49_8k_greedy": round(CORPUS_ROWS * sent_per_row / greedy_rate / 3600, 2),
    }


def _sentences_of(row: dict) -> list[str]:
    from dataset_builder.translation.turns import Turn

    return [s for m in row["messages"] for s in Turn(m["content"], False, "en").sentences()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--package", type=Path, default=None, help="an .argosmodel (default: build a tiny one)"
    )
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument(
        "--rows-file", type=Path, default=None, help="real Alpaca-style rows (JSON/JSONL) for (b)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = run(args.package, args.sentences, args.rows, Path(tmp), args.rows_file)
    print(f"package: {r['package']['code']} {r['package']['version']} sha256 {r['package']['sha256'][:16]}")
    print(f"(a) {r['sentences']} sentences, beam 4:")
    print(f"    argostranslate, one call each: {r['argos_sentences_per_s']:9.2f} sentences/s")
    print(
        f"    ours, batched:                 {r['ours_sentences_per_s']:9.2f} sentences/s  ({r['sentence_speedup']}x)"
    )
    print(f"    ours, batched, greedy:         {r['ours_greedy_sentences_per_s']:9.2f} sentences/s")
    print(f"    identical outputs: {r['identical_share']:.1%} exactly, "
          f"{r['identical_share_after_argos_underscore_replacement']:.1%} after argos's '_' -> ' '")  # fmt: skip
    print(f"(b) {r['rows']} rows with code ({r['rows_from']}):")
    print(
        f"    argostranslate per field: {r['argos_rows_seconds']:8.2f} s, code intact in {r['argos_code_intact_share']:.1%}"
    )
    print(f"    ours (cache off):         {r['ours_rows_seconds']:8.2f} s, code intact in {r['ours_code_intact_share']:.1%}"
          f"  ({r['row_speedup']}x)")  # fmt: skip
    print(f"    prose sentences per row: {r['prose_sentences_per_row_before_dedup']}; model inputs per row "
          f"(deduplicated sentences, plus pieces retried around code that lost a placeholder): "
          f"{r['model_sentences_per_row']}")  # fmt: skip
    print(f"projected for {CORPUS_ROWS} rows on this machine: beam 4 {r['projected_hours_49_8k_beam4']} h, "
          f"greedy {r['projected_hours_49_8k_greedy']} h")  # fmt: skip
    print(json.dumps({"benchmark": "translate", **r}))


if __name__ == "__main__":
    main()

"""What the round-trip quality score costs, against the translation itself.

    python benchmarks/mt_quality.py --forward translate-en_ru-bench.argosmodel \\
        --back translate-ru_en-bench.argosmodel --rows-file new_codealpaca.json [--rows 200]

In one run, on the same real rows (a seeded sample of an Alpaca-style JSON/JSONL file):
  (1) the translate stage en->ru (cache off, checks off so that every row goes on);
  (2) our mt_quality stage over its output, ru->en (cache off, filters off): prose only, inline
      code behind placeholders, sentences deduplicated, one batched engine call per batch of rows;
      and again with sample_fraction 0.1;
  (3) the plain round trip an expert would write first (NeMo Curator's way: the translated text
      back through the same batched CTranslate2 engine, sentence by sentence, code and all, then
      sacrebleu sentence chrF per row).
Prints the seconds of each, scoring / translation, plain / ours, and the inputs each sent to the
model. Last line: JSON.
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
sys.path.insert(0, str(HERE.parent))


def real_rows(path: Path, n: int, seed: int = 0) -> list[dict]:
    from dataset_builder.rows import make_row_id

    text = path.read_text(encoding="utf-8")
    records = (
        json.loads(text) if text.lstrip().startswith("[") else [json.loads(x) for x in text.splitlines() if x]
    )
    picked = random.Random(seed).sample(records, min(n, len(records)))
    rows = []
    for i, r in enumerate(picked):
        prompt = "\n\n".join(f for f in (r.get("instruction", ""), r.get("input", "")) if f)
        messages = [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": r.get("output") or r.get("response", "")},
        ]
        rows.append({"row_id": make_row_id("b", messages), "source": "b", "source_key": str(i), "lang": "en",
                     "messages": messages})  # fmt: skip
    return rows


def _ctx(name: str, work: Path):  # -> StageContext
    from dataset_builder.stages.base import RejectSink, StageContext, StageStats

    return StageContext(name, StageStats(name), RejectSink(), work, False, work)


def _run(stage, table, ctx) -> tuple[list[dict], float]:
    start = time.perf_counter()
    out = [r for b in stage.run(iter([table]), ctx) for r in b.to_pylist()]
    return out, time.perf_counter() - start


def plain_round_trip(rows: list[dict], engine) -> tuple[list[float], int, float]:
    """Every translated turn back, sentence by sentence (pysbd per line), code included; chrF of
    the whole back-translated turns against the whole original turns."""
    from sacrebleu.metrics import CHRF

    from dataset_builder.translation.sentences import split_sentences

    start = time.perf_counter()
    plans = []
    for row in rows:
        turns = []
        for m in row["messages"]:
            lines = [split_sentences(line, "ru") for line in m["content"].split("\n")]
            turns.append(lines)
        plans.append(turns)
    unique = list(dict.fromkeys(s for turns in plans for lines in turns for ss, _ in lines for s in ss))
    done = dict(zip(unique, engine.translate(unique), strict=True))
    chrf = CHRF()
    scores = []
    for row, turns in zip(rows, plans, strict=True):
        back = "\n".join("\n".join(" ".join(done[s] for s in ss) for ss, _ in lines) for lines in turns)
        source = "\n".join(m["content"] for m in row["source_messages"])
        scores.append(chrf.sentence_score(back, [source]).score)
    return scores, len(unique), time.perf_counter() - start


def run(forward: Path, back: Path, rows_file: Path, n_rows: int, work: Path, beam: int) -> dict:
    import pyarrow as pa

    from dataset_builder.rows import CANONICAL_SCHEMA
    from dataset_builder.stages.mt_quality import MtQuality, MtQualityConfig
    from dataset_builder.stages.translate import Translate, TranslateConfig
    from dataset_builder.translation import packages
    from dataset_builder.translation.engine import DecodeSettings, Engine

    pkg_dir = work / "packages"
    fwd = packages.install(forward, pkg_dir)
    rev = packages.install(back, pkg_dir)
    rows = real_rows(rows_file, n_rows)
    table = pa.Table.from_pylist(rows, schema=CANONICAL_SCHEMA)

    translate_cfg = TranslateConfig(packages_dir=str(pkg_dir), cache=False, detect_language=False,
                                    verify_language=False, min_length_ratio=0.0, max_length_ratio=1e9,
                                    check_repetition=False, beam_size=beam)  # fmt: skip
    ctx = _ctx("translate", work)
    translated, forward_s = _run(Translate(translate_cfg), table, ctx)
    forward_inputs = ctx.stats.counters.get("sentences_translated", 0)
    translated_table = pa.Table.from_pylist(translated)

    def score(fraction: float) -> tuple[list[dict], float, int]:
        cfg = MtQualityConfig(packages_dir=str(pkg_dir), cache=False, beam_size=beam, sample_fraction=fraction,
                              min_target_script_share=None, max_untranslated_share=None)  # fmt: skip
        qctx = _ctx("mt_quality", work)
        out, seconds = _run(MtQuality(cfg), translated_table, qctx)
        return out, seconds, qctx.stats.counters.get("sentences_translated", 0)

    scored, ours_s, ours_inputs = score(1.0)
    sampled, sample_s, sample_inputs = score(0.1)
    engine = Engine(rev, DecodeSettings(beam_size=beam))
    engine.translate(["Разогрев."])
    plain_scores, plain_inputs, plain_s = plain_round_trip(translated, engine)
    chrfs = [r["mt_quality"]["round_trip_chrf"] for r in scored if r["mt_quality"]["scored"]]
    return {
        "rows": len(rows),
        "rows_translated": len(translated),
        "beam": beam,
        "forward_package": fwd.describe()["code"],
        "back_package": rev.describe()["code"],
        "translate_seconds": round(forward_s, 2),
        "translate_model_inputs": forward_inputs,
        "mt_quality_seconds": round(ours_s, 2),
        "mt_quality_model_inputs": ours_inputs,
        "mt_quality_over_translate": round(ours_s / forward_s, 3),
        "mt_quality_sample_0_1_seconds": round(sample_s, 2),
        "mt_quality_sample_0_1_model_inputs": sample_inputs,
        "mt_quality_sample_0_1_over_translate": round(sample_s / forward_s, 3),
        "rows_scored_in_sample_0_1": sum(r["mt_quality"]["scored"] for r in sampled),
        "plain_round_trip_seconds": round(plain_s, 2),
        "plain_round_trip_model_inputs": plain_inputs,
        "plain_over_ours": round(plain_s / ours_s, 3),
        "ours_mean_chrf": round(sum(chrfs) / max(len(chrfs), 1), 2),
        "plain_mean_chrf": round(sum(plain_scores) / max(len(plain_scores), 1), 2),
        "cpu_count": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forward", type=Path, required=True, help="en->ru .argosmodel")
    parser.add_argument("--back", type=Path, required=True, help="ru->en .argosmodel")
    parser.add_argument("--rows-file", type=Path, required=True, help="Alpaca-style rows (JSON or JSONL)")
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--beam", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = run(args.forward, args.back, args.rows_file, args.rows, Path(tmp), args.beam)
    print(f"{r['rows']} real rows, beam {r['beam']}, {r['forward_package']} then {r['back_package']}")
    print(
        f"translate stage (en->ru):        {r['translate_seconds']:8.2f} s  {r['translate_model_inputs']} model inputs"
    )
    print(
        f"mt_quality, every row (ru->en):  {r['mt_quality_seconds']:8.2f} s  {r['mt_quality_model_inputs']} model "
        f"inputs  ({r['mt_quality_over_translate']:.2f}x the translation)"
    )
    print(
        f"mt_quality, sample_fraction 0.1: {r['mt_quality_sample_0_1_seconds']:8.2f} s  "
        f"{r['mt_quality_sample_0_1_model_inputs']} model inputs  ({r['mt_quality_sample_0_1_over_translate']:.2f}x)"
    )
    print(
        f"plain round trip, code and all:  {r['plain_round_trip_seconds']:8.2f} s  "
        f"{r['plain_round_trip_model_inputs']} model inputs  ({r['plain_over_ours']:.2f}x ours)"
    )
    print(json.dumps(r))


if __name__ == "__main__":
    main()

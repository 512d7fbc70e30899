"""Our translation engine against a tuned plain CTranslate2 call, on the same real sentences.

Sentences: the first N distinct prose sentences (letters and plain punctuation only, 4+ words) of
the instructions in ``new_codealpaca.json``. Model: an Argos-sized package
(``translate-en_ru-bench.argosmodel``: Transformer-base, int8). Three ways, beam 4 and greedy:
  ours:     ``Engine.translate`` as the translate stage feeds it: sentences sorted by length, in
            chunks of 512, the stage's runtime defaults (all cores as translator threads,
            ``batch_tokens`` 2048);
  plain:    one ``ctranslate2.Translator(..., inter_threads=cores, intra_threads=1)
            .translate_batch(all_sentences, max_batch_size=32)``, the call an expert would write;
  previous: the stage's chunks through CTranslate2's own token batching (``max_batch_size=2048,
            batch_type="tokens"``), which is what the engine did before.
Rounds alternate between the three so that a busy machine slows all alike; the best round of each
counts. Prints sentences/s, ours/plain, and whether every output is identical to the plain call's.
Goal: ours >= plain at beam 4 and greedy, outputs identical. Last line: JSON.

    python benchmarks/engine.py [--package PATH] [--data new_codealpaca.json] [--sentences 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
SHARED = HERE.parent.parent / "shared"
CHUNK = 512
_PROSE = re.compile(r"[A-Za-z][A-Za-z ,;:'\"?!-]*[.?!]")


def prose_sentences(path: Path, n: int) -> list[str]:
    out: dict[str, None] = {}
    for row in json.loads(path.read_text(encoding="utf-8")):
        for sentence in re.split(r"(?<=[.!?])\s+", row["instruction"].strip()):
            if _PROSE.fullmatch(sentence) and len(sentence.split()) >= 4:
                out.setdefault(sentence)
    if len(out) < n:
        sys.exit(f"{path}: {len(out)} prose sentences, {n} asked for")
    return list(out)[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, default=SHARED / "models/translate-en_ru-bench.argosmodel")
    parser.add_argument("--data", type=Path, default=SHARED / "data/codealpaca-new-4.5k/new_codealpaca.json")
    parser.add_argument("--sentences", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    for path in (args.package, args.data):
        if not path.is_file():
            sys.exit(f"{path}: not found")

    import ctranslate2
    import sentencepiece as spm

    from dataset_builder.translation import packages
    from dataset_builder.translation.engine import DecodeSettings, Engine, RuntimeSettings

    sentences = prose_sentences(args.data, args.sentences)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        package = packages.install(args.package, Path(tmp))
        sp = spm.SentencePieceProcessor(model_file=str(package.path / "sentencepiece.model"))
        tokens = sp.encode(sentences, out_type=str)
        inter = 1 if args.device == "cuda" else cores
        plain_translator = ctranslate2.Translator(
            str(package.path / "model"), device=args.device, inter_threads=inter, intra_threads=1
        )
        by_length = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        chunks = [by_length[k : k + CHUNK] for k in range(0, len(by_length), CHUNK)]
        results: dict[str, dict] = {}
        for beam in (4, 1):
            decode = DecodeSettings(beam_size=beam)
            engine = Engine(package, decode, RuntimeSettings(device=args.device, batch_tokens=2048))
            options = {
                "beam_size": beam,
                "length_penalty": decode.length_penalty,
                "replace_unknowns": decode.replace_unknowns,
                "max_decoding_length": decode.max_decoding_length,
            }

            def detok(result: ctranslate2.TranslationResult) -> str:
                text = sp.decode_pieces(result.hypotheses[0]).replace("\u2581", " ")
                return text[1:] if text.startswith(" ") else text

            def ours(engine: Engine = engine) -> list[str]:
                out = [""] * len(sentences)
                for chunk in chunks:
                    for i, text in zip(chunk, engine.translate([sentences[i] for i in chunk]), strict=True):
                        out[i] = text
                return out

            def plain(options: dict = options) -> list[str]:
                return [
                    detok(r) for r in plain_translator.translate_batch(tokens, max_batch_size=32, **options)
                ]

            def previous(engine: Engine = engine, options: dict = options) -> list[str]:
                out = [""] * len(sentences)
                for chunk in chunks:
                    found = engine.translator.translate_batch(
                        [tokens[i] for i in chunk], max_batch_size=2048, batch_type="tokens", **options
                    )
                    for i, r in zip(chunk, found, strict=True):
                        out[i] = detok(r)
                return out

            best = {"ours": float("inf"), "plain": float("inf"), "previous": float("inf")}
            outputs: dict[str, list[str]] = {}
            for _ in range(args.rounds):
                for name, run in (("ours", ours), ("plain", plain), ("previous", previous)):
                    start = time.perf_counter()
                    outputs[name] = run()
                    best[name] = min(best[name], time.perf_counter() - start)
            rates = {name: round(len(sentences) / s, 2) for name, s in best.items()}
            same = {
                name: sum(a == b for a, b in zip(outputs[name], outputs["plain"], strict=True))
                for name in ("ours", "previous")
            }
            label = "beam 4" if beam == 4 else "greedy"
            results[label.replace(" ", "")] = {
                "sentences_per_s": rates,
                "ours_over_plain": round(rates["ours"] / rates["plain"], 3),
                "identical_to_plain": same,
            }
            print(f"{label}: {len(sentences)} sentences, best of {args.rounds} rounds")
            for name in ("ours", "plain", "previous"):
                tail = f"  identical to plain: {same[name]}/{len(sentences)}" if name in same else ""
                print(f"    {name:<9}{rates[name]:8.2f} sentences/s{tail}")
            print(f"    ours/plain: {rates['ours'] / rates['plain']:.3f}")
    summary = {
        "benchmark": "engine",
        "device": args.device,
        "cores": cores,
        "sentences": len(sentences),
        **results,
        "goal_met": all(
            r["ours_over_plain"] >= 1.0 and r["identical_to_plain"]["ours"] == len(sentences)
            for r in results.values()
        ),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

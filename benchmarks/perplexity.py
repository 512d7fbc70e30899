"""Perplexity speed: the transformers guide's loop (one window per forward pass) against ours
(batched windows, vocabulary projection only where tokens are scored), same tiny Mistral-shaped
model (real 32k Zephyr vocabulary), same >= 200k-token stream, same windows.

    python benchmarks/perplexity.py [--tokens 200000] [--max-length 512] [--stride 256]

Prints tokens/s of both, the ratio and the relative difference in perplexity; last line JSON.
Goal: >= 3x the reference on 2 CPU cores, relative difference <= 1e-4.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def corpus(tokens_wanted: int, tokenizer, seed: int = 0) -> list[str]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from synthetic_corpus import generate

    texts, total = [], 0
    rows = generate(4000, seed)
    pool = [r["вопрос"] + "\n" + r["ответ"] for r in rows["ru_qa"]] + [
        r["instruction"] + "\n" + r["output"] for r in rows["alpaca"]
    ]
    rng = random.Random(seed)
    while total < tokens_wanted:
        text = rng.choice(pool)
        texts.append(text)
        total += len(tokenizer(text, add_special_tokens=False).input_ids) + 2
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200_000)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--stride", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dataset_builder.testing import build_tiny_mistral
    from trainer.evaluation.perplexity import EvalSettings, score, score_reference, stream

    with tempfile.TemporaryDirectory() as tmp:
        base = build_tiny_mistral(Path(tmp) / "tiny")
        model = AutoModelForCausalLM.from_pretrained(str(base)).eval()
        tokenizer = AutoTokenizer.from_pretrained(str(base))
    settings = EvalSettings(max_length=args.max_length, stride=args.stride, batch_size=args.batch_size)
    ids = stream(tokenizer, corpus(args.tokens, tokenizer), settings)
    start = time.perf_counter()
    ref = score_reference(model, ids, settings, tokenizer.bos_token_id)
    ref_s = time.perf_counter() - start
    start = time.perf_counter()
    ours = score(model, ids, settings, tokenizer.bos_token_id, tokenizer.pad_token_id or 0)
    ours_s = time.perf_counter() - start
    rel = abs(ours.perplexity - ref.perplexity) / ref.perplexity
    result = {
        "benchmark": "perplexity", "tokens": len(ids), "max_length": args.max_length, "stride": args.stride,
        "batch_size": args.batch_size, "reference_tokens_per_s": round(ref.tokens / ref_s, 1),
        "ours_tokens_per_s": round(ours.tokens / ours_s, 1), "speedup": round(ref_s / ours_s, 2),
        "reference_perplexity": ref.perplexity, "ours_perplexity": ours.perplexity, "relative_difference": rel,
        "goal_met": ref_s / ours_s >= 3 and rel <= 1e-4,
    }  # fmt: skip
    print(f"{len(ids)} tokens, max_length {args.max_length}, stride {args.stride}")
    print(
        f"reference (one window per pass): {result['reference_tokens_per_s']:>10} tokens/s  ppl {ref.perplexity:.4f}"
    )
    print(
        f"ours (batched, scored logits):   {result['ours_tokens_per_s']:>10} tokens/s  ppl {ours.perplexity:.4f}"
    )
    print(f"speedup {result['speedup']}x, relative difference {rel:.2e}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

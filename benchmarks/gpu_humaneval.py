"""Russian HumanEval pass@1 end to end: build humaneval-ru from recipes/humaneval-ru.toml, generate
completions through lm-evaluation-harness, run them in the sandbox. Prints the time of each part
and, last, one JSON line.

    python benchmarks/gpu_humaneval.py --tiny                      # tiny random model; CPU or GPU
    python benchmarks/gpu_humaneval.py --layers 32 --limit 32      # zephyr-7b-beta's shape, random weights
    python benchmarks/gpu_humaneval.py --model PATH                # a real model on this machine

Without --argos the set is translated by a tiny random Argos package built on the spot (its
Russian is noise; code is untouched, which is what pass@1 depends on for the canonical solutions).
Random weights never hit a stop sequence, so their generation time is the worst case: every
completion runs to --max-gen-toks. Offline: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build_humaneval_ru(work: Path, argos: str | None, max_rejected: int) -> tuple[Path, float]:
    from dataset_builder.publishing.pipeline import build
    from dataset_builder.recipe.schema import parse_recipe
    from dataset_builder.registry.store import Registry
    from dataset_builder.testing import build_tiny_argos_package
    from dataset_builder.translation import packages

    archive = Path(argos) if argos else build_tiny_argos_package(work / "argos-build")
    packages.install(archive, work / "argos")
    recipe_path = ROOT / "recipes" / "humaneval-ru.toml"
    data = tomllib.loads(recipe_path.read_text(encoding="utf-8"))
    (stage,) = [s for s in data["stages"] if s["type"] == "translate"]
    # A random model's Russian fails the prose checks; the code checks stay on.
    stage.update(packages_dir=str(work / "argos"), cache=False, verify_language=False, check_repetition=False,
                 min_length_ratio=0.0, max_length_ratio=100.0, max_latin_share=1.0)  # fmt: skip
    # The recipe publishes all 164 or nothing; a timing run may accept fewer (the JSON says how many).
    data["publish"]["max_rejected_rows"] = max_rejected
    registry = Registry(work / "registry")
    started = time.monotonic()
    build(parse_recipe(data, recipe_path), registry, show_progress=False)
    return registry.root, time.monotonic() - started


def make_model(work: Path, args: argparse.Namespace) -> str:
    if args.model:
        return args.model
    from dataset_builder.testing import build_tiny_mistral

    if args.tiny:
        return str(build_tiny_mistral(work / "tiny-mistral"))
    import torch
    from transformers import AutoModelForCausalLM, MistralConfig

    from dataset_builder.chat.tokenizer import write_zephyr_tokenizer

    out = work / "mistral-shape"
    write_zephyr_tokenizer(out)
    config = MistralConfig(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=args.layers,
                           num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=32768,
                           sliding_window=4096, bos_token_id=1, eos_token_id=2, pad_token_id=2)  # fmt: skip
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(out)
    return str(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--tiny", action="store_true", help="tiny random Mistral with the real Zephyr tokenizer"
    )
    which.add_argument(
        "--model", default=None, help="a local model folder (or a Hub id already in the cache)"
    )
    parser.add_argument("--layers", type=int, default=32, help="layers of the 7B-shaped random model")
    parser.add_argument(
        "--argos", default=None, help="an .argosmodel to translate with (default: a tiny one)"
    )
    parser.add_argument("--limit", type=int, default=None, help="first N problems only")
    parser.add_argument("--max-rejected", type=int, default=0,
                        help="problems the translation may reject and the set still be built (timing only)")  # fmt: skip
    parser.add_argument("--max-gen-toks", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4, help="sandboxed programs at once")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--load-in-4bit", action="store_true")
    args = parser.parse_args()

    import torch

    from trainer.evaluation.downstream import BenchmarkSettings, run_benchmark

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        registry, build_seconds = build_humaneval_ru(work, args.argos, args.max_rejected)
        started = time.monotonic()
        model = make_model(work, args)
        model_seconds = time.monotonic() - started
        settings = BenchmarkSettings(
            tasks=("humaneval-ru",), batch_size=args.batch_size, limit=args.limit, device=args.device,
            load_in_4bit=args.load_in_4bit, max_gen_toks=args.max_gen_toks, workers=args.workers,
            registry=str(registry),
        )  # fmt: skip
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        started = time.monotonic()
        report = run_benchmark(model, [], work / "report", settings)
        total = time.monotonic() - started
        result = report["results"]["base"]["humaneval-ru"]
        # The built set's own canonical solutions: all pass when translation left the code alone.
        from trainer.evaluation.humaneval import load_problems, score
        from trainer.evaluation.sandbox.pool import Limits, Sandbox

        problems_ru, _ = load_problems("humaneval-ru", registry=str(registry))
        with Sandbox(Limits(timeout=10, workers=args.workers)) as sandbox:
            canonical = score(problems_ru, [(p.task_id, p.canonical_solution) for p in problems_ru], sandbox)
        samples = [
            json.loads(line) for line in (work / "report" / result["samples_path"]).read_text().splitlines()
        ]
    problems = result["problems_scored"]
    summary = {
        "benchmark": "gpu_humaneval",
        "model": "tiny" if args.tiny else (args.model or f"mistral-shape-{args.layers}-layers-random"),
        "device": report.get("device"),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "problems": problems,
        "problems_published": report["tasks"]["humaneval-ru"]["problems"],
        "pass@1": result["pass@1"],
        "canonical_pass@1": canonical["pass@1"],
        "statuses": result["statuses"],
        "build_humaneval_ru_s": round(build_seconds, 2),
        "make_model_s": round(model_seconds, 2),
        "generation_s": result["seconds"]["generation"],
        "execution_s": result["seconds"]["execution"],
        "benchmark_total_s": round(total, 2),
        "problems_per_s_generation": round(problems / max(result["seconds"]["generation"], 1e-9), 3),
        "mean_completion_chars": round(sum(len(s["completion"]) for s in samples) / max(len(samples), 1), 1),
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
        "sandbox": report["sandbox"]["network"],
        "max_gen_toks": args.max_gen_toks,
        "batch_size": args.batch_size,
    }  # fmt: skip
    for key, value in summary.items():
        print(f"{key}: {value}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

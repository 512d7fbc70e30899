"""Near-duplicate detection on 65,000 synthetic documents of ~1,500 characters.

Planted near-duplicates at known Jaccard levels; ground truth is exact Jaccard on the same word
5-gram shingles (Python sets of strings), for every pair inside a planted cluster (random documents
from a 60k-word vocabulary share no 5-grams by chance). Same parameters for both:
  (a) baseline: plain datasketch, one ``MinHash`` per document fed with ``update_batch``, then
      ``MinHashLSH`` insert and query; every LSH candidate counts as a reported pair.
  (b) ours: Arrow/numpy shingling and signatures, datasketch ``MinHashLSH`` as the index, candidates
      verified with exact Jaccard on the shingle sets.
Prints time, precision, recall and peak RSS of each (each in its own process) and the speed ratio.
Goal: (b) >= 10x faster than (a), precision and recall >= 0.99, <= 6 s, <= 1.5 GB. Last line: JSON.

    python benchmarks/dedup.py [--docs 65000] [--threshold 0.8] [--num-perm 128]
"""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_GRAM = 5


def make_corpus(docs: int, seed: int) -> tuple[list[str], list[list[int]]]:
    rng = random.Random(seed)
    vocab = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
        for _ in range(60_000)
    ]
    weights = [1 / (r + 1) ** 0.8 for r in range(len(vocab))]
    cum = list(itertools.accumulate(weights))
    texts: list[str] = []
    clusters: list[list[int]] = []
    levels = [0.98, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6]
    while len(texts) < docs:
        words = rng.choices(vocab, cum_weights=cum, k=rng.randint(200, 260))
        base = len(texts)
        texts.append(" ".join(words))
        if rng.random() < 0.025 and len(texts) < docs - 3:
            members = [base]
            for _ in range(rng.choice([1, 1, 2, 3])):
                level = rng.choice(levels)
                # Replacing a share p of words hits roughly (1-p)^5 / (2 - (1-p)^5) Jaccard on 5-grams.
                keep = level ** (1 / N_GRAM) * 1.0
                variant = [
                    w
                    if rng.random() < (2 * keep**N_GRAM / (1 + keep**N_GRAM)) ** (1 / N_GRAM)
                    else rng.choice(vocab)
                    for w in words
                ]
                members.append(len(texts))
                texts.append(" ".join(variant))
            clusters.append(members)
    return texts[:docs], clusters


def shingle_set(text: str) -> set[str]:
    words = text.split()
    return {" ".join(words[i : i + N_GRAM]) for i in range(max(len(words) - N_GRAM + 1, 1))}


def ground_truth(texts: list[str], clusters: list[list[int]], threshold: float) -> set[tuple[int, int]]:
    truth = set()
    for members in clusters:
        sets = {m: shingle_set(texts[m]) for m in members}
        for x, y in itertools.combinations(members, 2):
            j = len(sets[x] & sets[y]) / len(sets[x] | sets[y])
            if j >= threshold:
                truth.add((x, y))
    return truth


def run_baseline(texts: list[str], threshold: float, num_perm: int) -> set[tuple[int, int]]:
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    hashes = []
    for i, text in enumerate(texts):
        m = MinHash(num_perm=num_perm)
        m.update_batch([s.encode("utf-8") for s in shingle_set(text)])
        lsh.insert(i, m)
        hashes.append(m)
    pairs = set()
    for i, m in enumerate(hashes):
        for j in lsh.query(m):
            if j != i:
                pairs.add((min(i, j), max(i, j)))
    return pairs


def run_ours(texts: list[str], threshold: float, num_perm: int) -> set[tuple[int, int]]:
    from dataset_builder.dedup.engine import find_near_duplicates

    return {
        (x, y) for x, y, _ in find_near_duplicates(texts, n=N_GRAM, num_perm=num_perm, threshold=threshold)
    }


def _child(which: str, corpus: Path, threshold: float, num_perm: int) -> None:
    texts = pickle.loads(corpus.read_bytes())
    # Imports are not part of the measurement, for either side.
    import datasketch  # noqa: F401

    import dataset_builder.dedup.engine  # noqa: F401

    start = time.perf_counter()
    pairs = (run_ours if which == "ours" else run_baseline)(texts, threshold, num_perm)
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mb": rss, "pairs": sorted(pairs)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=65_000)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--child", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.corpus, args.threshold, args.num_perm)
        return

    texts, clusters = make_corpus(args.docs, args.seed)
    truth = ground_truth(texts, clusters, args.threshold)
    mean_chars = sum(map(len, texts)) / len(texts)
    print(
        f"{len(texts)} docs, mean {mean_chars:.0f} chars, {len(clusters)} planted clusters, "
        f"{len(truth)} pairs with exact Jaccard >= {args.threshold}"
    )
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.pkl"
        corpus.write_bytes(pickle.dumps(texts))
        for which in ("ours",) if args.skip_baseline else ("ours", "baseline"):
            cmd = [
                sys.executable,
                __file__,
                "--child",
                which,
                "--corpus",
                str(corpus),
                "--threshold",
                str(args.threshold),
                "--num-perm",
                str(args.num_perm),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            res = json.loads(out.strip().splitlines()[-1])
            pairs = {tuple(p) for p in res["pairs"]}
            tp = len(pairs & truth)
            res["precision"] = tp / len(pairs) if pairs else 1.0
            res["recall"] = tp / len(truth) if truth else 1.0
            res["reported"] = len(pairs)
            del res["pairs"]
            results[which] = res
            print(
                f"{which:<9}{res['seconds']:8.2f} s  precision {res['precision']:.4f}  recall {res['recall']:.4f}  "
                f"reported {res['reported']}  peak RSS {res['peak_rss_mb']:.0f} MB"
            )
    ours = results["ours"]
    summary = {
        "benchmark": "dedup",
        "docs": len(texts),
        "threshold": args.threshold,
        "num_perm": args.num_perm,
        "true_pairs": len(truth),
        "ours": ours,
    }
    if "baseline" in results:
        base = results["baseline"]
        summary["baseline"] = base
        summary["speedup"] = round(base["seconds"] / ours["seconds"], 2)
        print(f"speedup (a)/(b): {summary['speedup']}x")
    summary["goal_met"] = (
        ours["seconds"] <= 6
        and ours["precision"] >= 0.99
        and ours["recall"] >= 0.99
        and ours["peak_rss_mb"] <= 1536
        and summary.get("speedup", 10) >= 10
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

"""Near-duplicate detection on synthetic documents of ~1,500 characters (65,000 by default).

Planted near-duplicates at known Jaccard levels; ground truth is exact Jaccard on the same word
5-gram shingles (Python sets of strings), for every pair inside a planted cluster (random documents
from a 60k-word vocabulary share no 5-grams by chance). The corpus is generated lazily into a
Parquet file, so a million documents never sit in memory here. Same parameters for all:
  (a) baseline: plain datasketch, one ``MinHash`` per document fed with ``update_batch``, then
      ``MinHashLSH`` insert and query; every LSH candidate counts as a reported pair.
  (p) previous: our in-memory engine before spilling (Arrow/numpy shingles and signatures held in
      memory, datasketch ``MinHashLSH`` as the index, exact Jaccard on the candidates).
  (b) ours: the spilled engine, reading the Parquet file in batches: shingles and band rows in
      Arrow files, banding one band at a time, exact Jaccard on the candidates.
Prints time, precision, recall and peak RSS of each (each in its own process), the speed ratio,
and whether (p) and (b) found the same pairs and clusters. Goal: (b) >= 10x faster than (a),
precision and recall >= 0.99, the same pairs as (p); at 65k docs <= 6 s and <= 1.5 GB, at any size
<= 4 GB peak RSS. ``--skip-baseline`` runs (b) alone (at 1M documents (a) and (p) need many GB).
Last line: JSON.

    python benchmarks/dedup.py [--docs 65000] [--threshold 0.8] [--num-perm 128] [--skip-baseline]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

N_GRAM = 5


def generate(docs: int, seed: int) -> Iterator[tuple[str, list[str]]]:
    """Documents one by one: a random text, sometimes followed by 1-3 planted variants of it
    (yielded with the cluster's texts, on the last member of each planted cluster)."""
    rng = random.Random(seed)
    vocab = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
        for _ in range(60_000)
    ]
    weights = [1 / (r + 1) ** 0.8 for r in range(len(vocab))]
    cum = list(itertools.accumulate(weights))
    levels = [0.98, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6]
    made = 0
    while made < docs:
        words = rng.choices(vocab, cum_weights=cum, k=rng.randint(200, 260))
        text = " ".join(words)
        made += 1
        if not (rng.random() < 0.025 and made < docs - 3):
            yield text, []
            continue
        cluster = [text]
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
            cluster.append(" ".join(variant))
        made += len(cluster) - 1
        for member in cluster[:-1]:
            yield member, []
        yield cluster[-1], cluster


def shingle_set(text: str) -> set[str]:
    words = text.split()
    return {" ".join(words[i : i + N_GRAM]) for i in range(max(len(words) - N_GRAM + 1, 1))}


def write_corpus(path: Path, docs: int, seed: int, threshold: float) -> dict:
    """The corpus as a one-column Parquet file, and the ground truth: pairs of planted cluster
    members with exact Jaccard >= ``threshold``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    truth: set[tuple[int, int]] = set()
    planted = chars = 0
    batch: list[str] = []
    schema = pa.schema([("text", pa.large_string())])
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for i, (text, cluster) in enumerate(generate(docs, seed)):
            batch.append(text)
            chars += len(text)
            if cluster:
                planted += 1
                first = i - len(cluster) + 1
                sets = [shingle_set(t) for t in cluster]
                for a, b in itertools.combinations(range(len(cluster)), 2):
                    if len(sets[a] & sets[b]) / len(sets[a] | sets[b]) >= threshold:
                        truth.add((first + a, first + b))
            if len(batch) == 50_000:
                writer.write_table(pa.table({"text": batch}, schema=schema))
                batch = []
        if batch:
            writer.write_table(pa.table({"text": batch}, schema=schema))
    return {"truth": truth, "planted": planted, "mean_chars": chars / docs}


def read_texts(corpus: Path) -> list[str]:
    import pyarrow.parquet as pq

    return pq.read_table(corpus).column("text").to_pylist()


def run_baseline(corpus: Path, threshold: float, num_perm: int) -> tuple[set[tuple[int, int]], int]:
    from datasketch import MinHash, MinHashLSH

    texts = read_texts(corpus)
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
    return pairs, len(texts)


# Our signatures are only ever compared with each other; datasketch asks for a scheme label to
# guard against mixing hash schemes, and its own labels are the only ones it accepts.
_SCHEME = "legacy"


def run_previous(corpus: Path, threshold: float, num_perm: int) -> tuple[set[tuple[int, int]], int]:
    """The engine as it was before spilling: everything in memory, datasketch's index."""
    from datasketch import LeanMinHash, MinHashLSH

    from dataset_builder.similarity.index import lsh_params, verify
    from dataset_builder.similarity.minhash import EMPTY, signatures
    from dataset_builder.similarity.shingles import shingle

    texts = read_texts(corpus)
    shingles = shingle(texts, n=N_GRAM)
    sigs = signatures(shingles, num_perm=num_perm)
    bands, rows = lsh_params(threshold, num_perm)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=(bands, rows))
    with lsh.insertion_session() as session:
        for key in range(len(sigs)):
            if not (sigs[key] == EMPTY).all():
                session.insert(
                    key, LeanMinHash(seed=1, hashvalues=sigs[key], scheme=_SCHEME), check_duplication=False
                )
    candidates: set[tuple[int, int]] = set()
    for table in lsh.hashtables:
        for bucket_key in table.keys():  # noqa: SIM118 - a datasketch storage, not a dict
            members = sorted(table.get(bucket_key))
            anchors = members[:32]
            for i, x in enumerate(members):
                for y in anchors[: min(i, len(anchors))]:
                    candidates.add((y, x))
    return {(x, y) for x, y, _ in verify(candidates, shingles, threshold)}, len(texts)


def run_ours(corpus: Path, threshold: float, num_perm: int) -> tuple[set[tuple[int, int]], int]:
    import pyarrow.parquet as pq

    from dataset_builder.similarity.near_pairs import NearDuplicateFinder

    with tempfile.TemporaryDirectory(prefix="dedup-bench-") as tmp:
        finder = NearDuplicateFinder(Path(tmp), n=N_GRAM, num_perm=num_perm, threshold=threshold)
        for batch in pq.ParquetFile(corpus).iter_batches(batch_size=8192, columns=["text"]):
            finder.add(batch.column(0))
        return {(x, y) for x, y, _ in finder.pairs()}, finder.num_docs


def components(pairs: set[tuple[int, int]]) -> list[list[int]]:
    """Connected components of the pair graph, by breadth-first search (no union-find shared with
    the code measured)."""
    edges: dict[int, list[int]] = {}
    for x, y in pairs:
        edges.setdefault(x, []).append(y)
        edges.setdefault(y, []).append(x)
    seen: set[int] = set()
    out = []
    for start in sorted(edges):
        if start in seen:
            continue
        seen.add(start)
        todo, members = [start], []
        while todo:
            node = todo.pop()
            members.append(node)
            for other in edges[node]:
                if other not in seen:
                    seen.add(other)
                    todo.append(other)
        out.append(sorted(members))
    return sorted(out)


RUNNERS = {"ours": run_ours, "previous": run_previous, "baseline": run_baseline}


def _child(which: str, corpus: Path, threshold: float, num_perm: int, out: Path) -> None:
    # Imports are not part of the measurement, for any side.
    import datasketch  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import dataset_builder.similarity.near_pairs  # noqa: F401

    start = time.perf_counter()
    pairs, docs = RUNNERS[which](corpus, threshold, num_perm)
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.write_text(json.dumps(sorted(pairs)))
    print(json.dumps({"seconds": round(seconds, 2), "peak_rss_mb": round(rss), "docs": docs}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=65_000)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--skip-baseline", action="store_true", help="run ours only (no datasketch, no previous)"
    )
    parser.add_argument("--child", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--pairs-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.corpus, args.threshold, args.num_perm, args.pairs_out)
        return

    results: dict[str, dict] = {}
    found: dict[str, set[tuple[int, int]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.parquet"
        started = time.perf_counter()
        info = write_corpus(corpus, args.docs, args.seed, args.threshold)
        truth = info["truth"]
        print(
            f"{args.docs} docs, mean {info['mean_chars']:.0f} chars, {info['planted']} planted clusters, "
            f"{len(truth)} pairs with exact Jaccard >= {args.threshold} "
            f"(generated in {time.perf_counter() - started:.0f} s)"
        )
        for which in ("ours",) if args.skip_baseline else ("ours", "previous", "baseline"):
            pairs_file = Path(tmp) / f"{which}.json"
            cmd = [sys.executable, __file__, "--child", which, "--corpus", str(corpus)]
            cmd += [
                "--threshold",
                str(args.threshold),
                "--num-perm",
                str(args.num_perm),
                "--pairs-out",
                str(pairs_file),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            res = json.loads(out.strip().splitlines()[-1])
            pairs = {(x, y) for x, y in json.loads(pairs_file.read_text())}
            found[which] = pairs
            tp = len(pairs & truth)
            res["precision"] = round(tp / len(pairs), 4) if pairs else 1.0
            res["recall"] = round(tp / len(truth), 4) if truth else 1.0
            res["reported"] = len(pairs)
            results[which] = res
            print(
                f"{which:<9}{res['seconds']:8.2f} s  precision {res['precision']:.4f}  recall {res['recall']:.4f}  "
                f"reported {res['reported']}  peak RSS {res['peak_rss_mb']:.0f} MB"
            )
    ours = results["ours"]
    summary: dict = {
        "benchmark": "dedup",
        "docs": args.docs,
        "threshold": args.threshold,
        "num_perm": args.num_perm,
        "true_pairs": len(truth),
        "ours": ours,
    }
    if "baseline" in results:
        summary["previous"] = results["previous"]
        summary["baseline"] = results["baseline"]
        summary["speedup"] = round(results["baseline"]["seconds"] / ours["seconds"], 2)
        summary["same_pairs_as_previous"] = found["ours"] == found["previous"]
        summary["same_clusters_as_previous"] = components(found["ours"]) == components(found["previous"])
        print(
            f"speedup (a)/(b): {summary['speedup']}x; same pairs as (p): {summary['same_pairs_as_previous']}, "
            f"same clusters: {summary['same_clusters_as_previous']}"
        )
    small = args.docs <= 65_000
    summary["goal_met"] = (
        ours["precision"] >= 0.99
        and ours["recall"] >= 0.99
        and ours["peak_rss_mb"] <= 4096
        and (not small or (ours["seconds"] <= 6 and ours["peak_rss_mb"] <= 1536))
        and summary.get("speedup", 10) >= 10
        and summary.get("same_pairs_as_previous", True)
        and summary.get("same_clusters_as_previous", True)
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

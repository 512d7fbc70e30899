"""MinHash signatures for many documents at once, in numpy.

Each permutation is ``x -> (a * x + b) mod 2**32`` over the top 32 bits of a shingle's 64-bit hash
(odd ``a``: a bijection of the 32-bit universe). One permutation is a few vectorized passes over
all shingles of all documents, and the per-document minimum is one ``minimum.reduceat``. The
permutations are spread over threads (numpy releases the GIL), so all cores work.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from dataset_builder.similarity.shingles import Shingles

EMPTY = np.uint32(0xFFFFFFFF)


def permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**32, size=num_perm, dtype=np.uint64).astype(np.uint32) | np.uint32(1)
    b = rng.integers(0, 2**32, size=num_perm, dtype=np.uint64).astype(np.uint32)
    return a, b


def signatures(
    shingles: Shingles, num_perm: int = 128, seed: int = 1, threads: int | None = None, block_docs: int = 1024
) -> np.ndarray:
    """``(docs, num_perm)`` uint32 signatures; documents without shingles get all-``EMPTY`` rows.

    Documents are processed in blocks whose shingles fit in a core's cache, every permutation
    applied to a block before moving on: about 3x faster than one pass per permutation over all
    shingles, which streams the whole array through memory 128 times.
    """
    a, b = permutations(num_perm, seed)
    x = (shingles.hashes >> np.uint64(32)).astype(np.uint32)
    counts = shingles.counts()
    offsets = shingles.offsets
    out = np.full((shingles.num_docs, num_perm), EMPTY, dtype=np.uint32)

    def work(lo: int) -> None:
        hi = min(lo + block_docs, shingles.num_docs)
        has = counts[lo:hi] > 0
        if not has.any():
            return
        xs = x[offsets[lo] : offsets[hi]]
        # reduceat needs valid start indices: reduce only over documents that have shingles.
        starts = (offsets[lo:hi] - offsets[lo])[has]
        tmp = np.empty_like(xs)
        block = np.empty((len(starts), num_perm), dtype=np.uint32)
        for i in range(num_perm):
            np.multiply(xs, a[i], out=tmp)
            tmp += b[i]
            block[:, i] = np.minimum.reduceat(tmp, starts)
        out[lo + np.flatnonzero(has)] = block

    threads = threads or min(os.cpu_count() or 1, 8)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(0, shingles.num_docs, block_docs)))
    return out

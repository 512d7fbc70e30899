"""Near-duplicate pairs of a list of texts: shingles -> signatures -> LSH candidates -> verified."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from dataset_builder.dedup.index import build_lsh, candidate_pairs, colliding, lsh_params, verify
from dataset_builder.dedup.minhash import signatures
from dataset_builder.dedup.shingles import Shingles, shingle


def find_near_duplicates(
    texts: Sequence[str] | pa.Array,
    *,
    n: int = 5,
    num_perm: int = 128,
    threshold: float = 0.8,
    seed: int = 1,
    shingles: Shingles | None = None,
) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, jaccard)`` with ``i < j`` whose exact shingle Jaccard is >= ``threshold``."""
    shingles = shingles if shingles is not None else shingle(texts, n=n)
    sigs = signatures(shingles, num_perm=num_perm, seed=seed)
    bands, rows = lsh_params(threshold, num_perm)
    lsh = build_lsh(sigs, threshold, keys=colliding(sigs, bands, rows))
    return verify(candidate_pairs(lsh), shingles, threshold)

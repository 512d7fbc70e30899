"""LSH banding over the band rows of all documents, one band at a time, with sorted arrays.

Two documents fall in the same bucket of a band when their signatures agree on all of the band's
rows: exactly datasketch ``MinHashLSH``'s bucket rule. Each band is grouped by sorting a 64-bit key
of its rows; equal keys are then confirmed row by row, so a hash collision can never make a bucket.
Within a bucket of sorted members, member ``i`` pairs with the first ``min(i, MAX_BUCKET_PAIRS)``
members: a bucket of ``m`` identical documents yields about ``32 m`` pairs rather than ``m**2 / 2``,
and union-find still joins them all.
"""

from __future__ import annotations

import numpy as np

from dataset_builder.similarity.minhash import EMPTY

MAX_BUCKET_PAIRS = 32
_FNV = np.uint64(0x100000001B3)


def band_keys(rows: np.ndarray) -> np.ndarray:
    """A 64-bit key of each document's band rows (``(docs, rows)`` uint32)."""
    key = np.zeros(len(rows), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for col in range(rows.shape[1]):
            key = (key ^ rows[:, col].astype(np.uint64)) * _FNV + np.uint64(col + 1)
    return key


def _buckets(rows: np.ndarray, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Documents sorted into buckets (``order``, indices into ``docs``) and each bucket's start in
    ``order``; documents sharing their rows with nobody are dropped."""
    key = band_keys(rows)
    order = np.argsort(key, kind="stable")
    sorted_key, sorted_rows = key[order], rows[order]
    new_key = np.ones(len(order), dtype=bool)
    new_key[1:] = sorted_key[1:] != sorted_key[:-1]
    boundary = new_key.copy()
    boundary[1:] |= (sorted_rows[1:] != sorted_rows[:-1]).any(axis=1)
    starts = np.flatnonzero(boundary)
    # Different rows under one key (a 64-bit collision) may interleave within the key's run: then
    # sort by the rows themselves.
    if len(starts) != int(new_key.sum()):
        order = np.lexsort((docs, *rows.T[::-1]))
        sorted_rows = rows[order]
        boundary[1:] = (sorted_rows[1:] != sorted_rows[:-1]).any(axis=1)
        starts = np.flatnonzero(boundary)
    lengths = np.diff(np.append(starts, len(order)))
    shared = lengths > 1
    keep = np.repeat(shared, lengths)
    order = order[keep]
    starts = np.concatenate([[0], np.cumsum(lengths[shared])[:-1]]).astype(np.int64)
    return order, starts if len(order) else np.zeros(0, np.int64)


def band_pairs(rows: np.ndarray) -> np.ndarray:
    """Candidate pairs ``(x, y)``, ``x < y``, of one band as an ``(pairs, 2)`` int64 array.

    ``rows`` is the band's ``(docs, rows_per_band)`` slice of every document's signature;
    documents whose rows are all ``EMPTY`` (no shingles) take part in no pair.
    """
    docs = np.flatnonzero(~(rows == EMPTY).all(axis=1)).astype(np.int64)
    if len(docs) < 2:
        return np.zeros((0, 2), np.int64)
    order, starts = _buckets(rows[docs], docs)
    if not len(order):
        return np.zeros((0, 2), np.int64)
    # Members in index order inside each bucket (docs is ascending, so sort positions per bucket).
    bucket = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(order))))
    members = docs[order[np.lexsort((order, bucket))]]
    position = np.arange(len(members)) - starts[bucket]
    partners = np.minimum(position, MAX_BUCKET_PAIRS)
    total = int(partners.sum())
    y = np.repeat(members, partners)
    first = np.repeat(starts[bucket], partners)
    offset = np.arange(total) - np.repeat(np.cumsum(partners) - partners, partners)
    x = members[first + offset]
    return np.stack([x, y], axis=1)

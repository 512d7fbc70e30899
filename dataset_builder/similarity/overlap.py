"""Exact shingle overlap between query texts (evaluation items) and documents (training rows).

For each query ``q`` with ``m`` distinct shingles and a required count ``need[q]`` (1..m), every
document sharing at least ``need[q]`` distinct shingles with ``q`` is found, with the exact count.
All of it is sorted-array work in numpy, without a hash set per document or a loop over pairs:

- shingles are renumbered densely over the queries' vocabulary, so a (document, shingle) pair is
  one int64 key and a membership test is one ``searchsorted``;
- prefix filtering bounds the candidates: a document holding ``need`` of ``q``'s ``m`` shingles
  holds at least one of any ``m - need + 1`` of them, so candidates come only from each query's
  rarest shingles (by document frequency), where a common phrase cannot multiply them;
- each candidate pair is then counted exactly over all of the query's shingles, in chunks that
  bound memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataset_builder.similarity.shingles import Shingles

# Probes per verification chunk: bounds the temporary arrays to a few hundred MB.
_CHUNK = 4_000_000
# The dense (query x shingle id) mask of one block of queries.
_MASK_BYTES = 64 << 20


@dataclass(frozen=True)
class Overlaps:
    """Document-query pairs that reach the required count: ``shared[k]`` distinct shingles of
    query ``query[k]`` are in document ``doc[k]``; ``query_size`` is each query's distinct count."""

    doc: np.ndarray  # int64
    query: np.ndarray  # int64
    shared: np.ndarray  # int64
    query_size: np.ndarray  # int64, one per query
    # The queries' distinct shingles (sorted) and how many documents hold each.
    vocab: np.ndarray | None = None  # uint64
    doc_freq: np.ndarray | None = None  # int64


def _unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (a plain sort: numpy's hash-based ``unique`` is slower on millions)."""
    values = np.sort(values)
    keep = np.ones(len(values), dtype=bool)
    keep[1:] = values[1:] != values[:-1]
    return values[keep]


def _distinct(sh: Shingles) -> tuple[np.ndarray, np.ndarray]:
    """``(owner, hash)`` of every distinct shingle of every document, sorted by owner then hash."""
    owner = np.repeat(np.arange(sh.num_docs, dtype=np.int64), sh.counts())
    order = np.lexsort((sh.hashes, owner))
    owner, hashes = owner[order], sh.hashes[order]
    keep = np.ones(len(hashes), dtype=bool)
    keep[1:] = (owner[1:] != owner[:-1]) | (hashes[1:] != hashes[:-1])
    return owner[keep], hashes[keep]


def distinct_counts(sh: Shingles) -> np.ndarray:
    """The number of distinct shingles of each document."""
    owner, _ = _distinct(sh)
    return np.bincount(owner, minlength=sh.num_docs).astype(np.int64)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])`` without the loop."""
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return shift + np.arange(total, dtype=np.int64)


def _chunks(lengths: np.ndarray) -> Iterator[slice]:
    """Consecutive slices of items whose lengths add up to about ``_CHUNK`` (at least one item)."""
    ends = np.cumsum(lengths)
    lo = 0
    while lo < len(lengths):
        done = int(ends[lo - 1]) if lo else 0
        hi = max(lo + 1, int(np.searchsorted(ends, done + _CHUNK, side="right")))
        yield slice(lo, hi)
        lo = hi


def _sums(found: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Sums of consecutive runs of ``found`` of the given (positive) lengths."""
    return np.add.reduceat(found.astype(np.int64), np.cumsum(lengths) - lengths)


def _count_in_table(
    table: np.ndarray, base: np.ndarray, ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> np.ndarray:
    """For each i: how many keys ``base[i] + ids[starts[i]:starts[i] + lengths[i]]`` are in the
    sorted ``table`` (a binary search per key)."""
    out = np.zeros(len(base), dtype=np.int64)
    for part in _chunks(lengths):
        probes = np.repeat(base[part], lengths[part]) + ids[_ranges(starts[part], lengths[part])]
        at = np.minimum(np.searchsorted(table, probes), len(table) - 1)
        out[part] = _sums(table[at] == probes, lengths[part])
    return out


def _count_in_queries(
    query: np.ndarray,
    q_ids: tuple[np.ndarray, np.ndarray, np.ndarray],
    ids: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    width: int,
) -> np.ndarray:
    """For each i: how many of ``ids[starts[i]:starts[i] + lengths[i]]`` query ``query[i]`` has,
    looked up in a dense (query x shingle id) mask built for a block of queries at a time: one
    memory access per id instead of a binary search."""
    q_id, q_start, q_size = q_ids
    out = np.zeros(len(query), dtype=np.int64)
    order = np.argsort(query, kind="stable")
    present = _unique(query)
    block = max(1, _MASK_BYTES // max(width, 1))
    mask = np.zeros((min(block, len(present)), width), dtype=bool)
    for b in range(0, len(present), block):
        group = present[b : b + block]
        rows = np.repeat(np.arange(len(group)), q_size[group])
        cols = q_id[_ranges(q_start[group], q_size[group])]
        mask[rows, cols] = True
        lo, hi = np.searchsorted(query[order], [group[0], group[-1] + 1])
        members = order[lo:hi]
        local = np.searchsorted(group, query[members])
        for part in _chunks(lengths[members]):
            sel = members[part]
            probe_rows = np.repeat(local[part], lengths[sel])
            out[sel] = _sums(mask[probe_rows, ids[_ranges(starts[sel], lengths[sel])]], lengths[sel])
        mask[rows, cols] = False
    return out


def shared_shingles(queries: Shingles, docs: Shingles, need: np.ndarray) -> Overlaps:
    """Every (document, query) pair sharing at least ``need[q]`` distinct shingles. A query with
    ``need`` < 1 or above its own distinct count matches nothing."""
    q_owner, q_hash = _distinct(queries)
    size = np.bincount(q_owner, minlength=queries.num_docs).astype(np.int64)
    empty = np.zeros(0, dtype=np.int64)
    if not len(q_hash) or not docs.num_docs:
        return Overlaps(empty, empty, empty, size)
    vocab = _unique(q_hash)
    width = np.int64(len(vocab))
    q_id = np.searchsorted(vocab, q_hash).astype(np.int64)

    # The documents' shingles that some query has, as sorted unique (document, shingle id) keys.
    # (A hash lookup: much faster than a binary search for the millions of document shingles.)
    found = pc.index_in(pa.array(docs.hashes), value_set=pa.array(vocab))
    hit = pc.is_valid(found).to_numpy(zero_copy_only=False)
    d_owner = np.repeat(np.arange(docs.num_docs, dtype=np.int64), docs.counts())[hit]
    d_id = pc.drop_null(found).to_numpy(zero_copy_only=False).astype(np.int64)
    keys = _unique(d_owner * width + d_id)
    key_id = keys % width
    freq = np.bincount(key_id, minlength=len(vocab))
    by_id = np.argsort(key_id, kind="stable")
    docs_of = keys[by_id] // width  # documents holding shingle id s: docs_of[first[s]:first[s]+freq[s]]
    first = np.concatenate([[0], np.cumsum(freq)[:-1]]).astype(np.int64)

    need = np.asarray(need, dtype=np.int64)
    usable = (need >= 1) & (need <= size)
    # Each query's shingles, rarest first; its first m - need + 1 make its prefix.
    order = np.lexsort((q_id, freq[q_id], q_owner))
    owner_o, id_o = q_owner[order], q_id[order]
    start = np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64)
    rank = np.arange(len(owner_o), dtype=np.int64) - start[owner_o]
    prefix = usable[owner_o] & (rank < (size - need + 1)[owner_o]) & (freq[id_o] > 0)
    p_owner, p_id = owner_o[prefix], id_o[prefix]
    cand_doc = docs_of[_ranges(first[p_id], freq[p_id])]
    cand_query = np.repeat(p_owner, freq[p_id])
    raw = np.sort(cand_doc * np.int64(queries.num_docs) + cand_query)
    starts = (
        np.flatnonzero(np.concatenate([[True], raw[1:] != raw[:-1]])) if len(raw) else np.zeros(0, np.int64)
    )
    pairs = raw[starts]
    c_doc, c_query = pairs // queries.num_docs, pairs % queries.num_docs
    # A query whose prefix is all of its shingles (need = 1) is counted already: a pair shares as
    # many shingles as it was generated from.
    counted = need[c_query] == 1
    multiplicity = np.diff(np.append(starts, len(raw)))

    # Exact counts, probing from whichever side has fewer shingle ids: a document's ids against
    # the query's keys, or the query's ids against the document's keys. (q_id is sorted by query,
    # so query q's ids are q_id[start[q]:start[q] + size[q]]; keys are sorted by document.)
    d_size = np.bincount(keys // width, minlength=docs.num_docs).astype(np.int64)
    d_start = np.concatenate([[0], np.cumsum(d_size)[:-1]]).astype(np.int64)
    shared = np.where(counted, multiplicity, 0)
    doc_side = (d_size[c_doc] <= size[c_query]) & ~counted
    on_doc = c_doc[doc_side]
    shared[doc_side] = _count_in_queries(
        c_query[doc_side], (q_id, start, size), key_id, d_start[on_doc], d_size[on_doc], int(width)
    )
    query_side = ~doc_side & ~counted
    on_query = c_query[query_side]
    shared[query_side] = _count_in_table(
        keys, c_doc[query_side] * width, q_id, start[on_query], size[on_query]
    )
    keep = shared >= need[c_query]
    return Overlaps(c_doc[keep], c_query[keep], shared[keep], size, vocab, freq.astype(np.int64))

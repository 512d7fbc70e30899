"""How far a training row is from holding a copy of an evaluation text: word edits, exactly.

An n-gram count cannot tell a copy from a paraphrase. "Write a Python function that computes the
factorial of a given number" with one word dropped and the same task asked for Scala both lose
three word 3-grams of the prompt; what differs is that the copy has no word of its own where the
prompt's word was. This module counts the edits of the best alignment of an evaluation text's words
inside a row's words:

- a word of the text missing in the row, or a word of the row inserted inside the text: 1 each
  (so a replaced word costs 2, one dropped word 1); the words one whitespace-separated token of
  the text folds into (``input_string``, ``/path/to/folder``) cost 1 when dropped together;
- words of the row before and after the text are free (a prompt quoted inside a longer turn is a
  copy), except that a text whose first (last) word is missing where the row's turn goes on before
  (after) it has that word replaced: 2, not 1. "Write a C++ function" is not "Implement a C++
  function" minus a word, and "... of a given integer using recursion. 5" is not "... of a given
  integer. 6" minus its input; a turn that starts (ends) where the text's words do is a copy with
  its first (last) word dropped.

For each candidate pair the row is cut to a window around the diagonal most of their shared n-grams
sit on (a copy's n-grams sit on one diagonal, shifted by one per edit), and the edit distance is a
dynamic programme run for all pairs at once in numpy: one step per word of the text, the row's
insertions as a running minimum along the window.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataset_builder.similarity.shingles import Shingles

# Cells of one dynamic-programme block (pairs x window): bounds the temporaries to ~100 MB.
_BLOCK_CELLS = 4_000_000
_FAR = np.int32(1 << 20)


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of a sorted array and how often each occurs."""
    if not len(keys):
        return keys, np.zeros(0, np.int64)
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    return keys[starts], np.diff(np.append(starts, len(keys)))


def diagonals(
    queries: Shingles, docs: Shingles, doc: np.ndarray, query: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each pair (``doc[k]``, ``query[k]``): the offset (document n-gram position minus query
    n-gram position) that most of the query's n-grams found in the document share, on a tie the
    smallest (0 for a pair sharing none); and which of the query's n-grams the document holds, as
    ``(pair, hash)``, each once."""
    none = np.zeros(0, np.int64)
    out = np.zeros(len(doc), dtype=np.int64)
    if not len(doc) or not len(queries.hashes):
        return out, none, none.astype(np.uint64)
    # Dense ids for the queries' n-grams; each (query, id) keeps its first position in the query.
    q_owner = np.repeat(np.arange(queries.num_docs, dtype=np.int64), queries.counts())
    q_pos = np.arange(len(queries.hashes), dtype=np.int64) - queries.offsets[q_owner]
    vocab = np.sort(queries.hashes)
    vocab = vocab[np.concatenate([[True], vocab[1:] != vocab[:-1]])]
    width = np.int64(len(vocab))
    q_key = q_owner * width + np.searchsorted(vocab, queries.hashes)
    order = np.lexsort((q_pos, q_key))
    q_key, q_pos = q_key[order], q_pos[order]
    first = np.concatenate([[True], q_key[1:] != q_key[:-1]])
    q_key, q_pos = q_key[first], q_pos[first]

    # The pairs' documents' n-grams that some query has: (document, position, id).
    rows = np.sort(doc)
    rows = rows[np.concatenate([[True], rows[1:] != rows[:-1]])]
    sub = docs.take(rows)
    found = pc.index_in(pa.array(sub.hashes), value_set=pa.array(vocab))
    hit = pc.is_valid(found).to_numpy(zero_copy_only=False)
    owner = np.repeat(np.arange(len(rows), dtype=np.int64), sub.counts())
    pos = (np.arange(len(sub.hashes), dtype=np.int64) - sub.offsets[owner])[hit]
    gid = pc.drop_null(found).to_numpy(zero_copy_only=False).astype(np.int64)
    owner = owner[hit]
    start = np.searchsorted(owner, np.arange(len(rows)))
    size = np.bincount(owner, minlength=len(rows))

    local = np.searchsorted(rows, doc)
    lengths = size[local]
    pair = np.repeat(np.arange(len(doc), dtype=np.int64), lengths)
    at = np.repeat(start[local] - (np.cumsum(lengths) - lengths), lengths) + np.arange(int(lengths.sum()))
    probe = query[pair] * width + gid[at]
    where = np.minimum(np.searchsorted(q_key, probe), len(q_key) - 1)
    ok = q_key[where] == probe
    pair, offset, held = pair[ok], pos[at][ok] - q_pos[where][ok], gid[at][ok]
    if not len(pair):
        return out, none, none.astype(np.uint64)
    # The most common offset of each pair (pairs are in order, so keys sort by pair first).
    span = np.int64(2 * (int(np.abs(offset).max()) + 1))
    keys, counts = _runs(np.sort(pair * span + offset + span // 2))
    pick = np.lexsort((keys, -counts, keys // span))
    lead = np.concatenate([[True], (keys[pick] // span)[1:] != (keys[pick] // span)[:-1]])
    chosen = keys[pick][lead]
    out[chosen // span] = chosen % span - span // 2
    both, _ = _runs(np.sort(pair * width + held))
    return out, both // width, vocab[both % width]


def _padded(
    words: Shingles, docs: np.ndarray, starts: np.ndarray, widths: np.ndarray, pad: np.uint64
) -> np.ndarray:
    """``words`` of document ``docs[k]`` from ``starts[k]``, ``widths[k]`` of them, padded with ``pad``."""
    cols = np.arange(int(widths.max()) if len(widths) else 0, dtype=np.int64)
    inside = cols[None, :] < widths[:, None]
    index = words.offsets[docs][:, None] + starts[:, None] + cols[None, :]
    out = np.full(inside.shape, pad, dtype=np.uint64)
    out[inside] = words.hashes[index[inside]]
    return out


def edit_counts(
    text_words: Shingles,
    row_words: Shingles,
    text: np.ndarray,
    row: np.ndarray,
    offset: np.ndarray,
    slack: np.ndarray,
    edges: np.ndarray,
    joined: np.ndarray,
    at_edges: np.ndarray | None = None,
) -> np.ndarray:
    """The edits (see the module) of the best alignment of all of text ``text[k]``'s words inside
    row ``row[k]``'s words ``offset[k] - slack`` to ``offset[k] + len(text) + slack``. ``edges``:
    the sorted positions in ``row_words.hashes`` where a turn starts or ends (a position between
    two words, or at a row's start or end, as ``offsets[row] + words before it``). ``joined``:
    per word of ``text_words``, whether it is in the same whitespace-separated token as the word
    before it. ``at_edges[k]`` False: pair ``k``'s first and last words cost 2 when dropped even
    where a turn starts or ends (a text whose parts were put in another order: its moved input
    is not a word a copy may leave off)."""
    out = np.zeros(len(text), dtype=np.int64)
    if not len(text):
        return out
    length = text_words.counts()[text]
    row_len = row_words.counts()[row]
    start = np.clip(offset - slack, 0, row_len)
    end = np.clip(offset + length + slack, 0, row_len)
    order = np.lexsort((end - start, length))
    lo = 0
    while lo < len(order):
        # Pairs of similar length together, so padding wastes little.
        rest = order[lo:]
        cells = np.maximum.accumulate(end[rest] - start[rest] + 1) * np.maximum.accumulate(length[rest])
        hi = lo + max(1, int(np.searchsorted(cells * np.arange(1, len(rest) + 1), _BLOCK_CELLS)))
        part = order[lo:hi]
        windows = _padded(row_words, row[part], start[part], end[part] - start[part], np.uint64(1))
        # Whether each gap of the window (before its first word ... after its last) is a turn's edge.
        gaps = row_words.offsets[row[part]][:, None] + start[part][:, None] + np.arange(windows.shape[1] + 1)
        at = np.minimum(np.searchsorted(edges, gaps), max(len(edges) - 1, 0))
        edge = edges[at] == gaps if len(edges) else np.zeros(gaps.shape, dtype=bool)
        if at_edges is not None:
            edge &= at_edges[part][:, None]
        firsts = np.zeros(len(part), np.int64)
        cont = _padded(
            Shingles(joined.astype(np.uint64), text_words.offsets),
            text[part],
            firsts,
            length[part],
            np.uint64(0),
        )
        out[part] = _dp(
            _padded(text_words, text[part], firsts, length[part], np.uint64(0)),
            length[part],
            windows,
            edge,
            cont.astype(bool),
        )
        lo = hi
    return out


def _dp(
    texts: np.ndarray, lengths: np.ndarray, windows: np.ndarray, edge: np.ndarray, joined: np.ndarray
) -> np.ndarray:
    """Edit counts for padded texts (pad 0) against padded windows (pad 1: never equal to a word,
    whose hashes are mixed, so neither is likely; a pad costs what an inserted word costs).
    ``edge[k, j]``: the gap before window word ``j`` is a turn's edge; ``joined[k, i]``: text word
    ``i`` continues the token of word ``i - 1``.

    ``prev[k, j]``: the fewest edits placing the text's first ``i`` words in the window's first
    ``j`` words, the window's words before the first placed one free; ``gone[k, j]``: the same
    with word ``i - 1`` dropped (the next word of its token is then dropped for free)."""
    pairs, width = windows.shape
    cols = np.arange(width + 1, dtype=np.int32)
    # A text word dropped at the text's start or end, where the turn goes on: a replaced word.
    extra = np.where(edge, 0, 1).astype(np.int32)
    prev = np.zeros((pairs, width + 1), dtype=np.int32)  # nothing placed yet: free
    gone = np.full((pairs, width + 1), _FAR, dtype=np.int32)
    out = np.zeros(pairs, dtype=np.int64)
    for i in range(int(lengths.max())):
        same = np.where(texts[:, i, None] == windows, prev[:, :-1], _FAR)
        # Dropping word i: a new token costs 1, the rest of a dropped token nothing.
        drop = np.minimum(prev + 1, np.where(joined[:, i, None], gone, _FAR))
        if i == 0:
            drop = drop + extra
        # Ending here: the last word placed on window word j - 1, or dropped after j words.
        done = np.flatnonzero(lengths == i + 1)
        if len(done):
            dropped = drop[done] + (extra[done] if i else 0)
            out[done] = np.minimum(same[done].min(axis=1), dropped.min(axis=1))
        base = drop.copy()
        np.minimum(base[:, 1:], same, out=base[:, 1:])
        prev = np.minimum.accumulate(base - cols, axis=1) + cols
        gone = drop
    return out

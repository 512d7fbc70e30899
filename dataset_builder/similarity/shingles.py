"""Word n-gram shingles for many documents at once, with no Python loop over words.

Text is folded (NFKC, lower case, every run of characters that are not letters, marks or digits
becomes one space; й and ё are never stripped), split into words by Arrow compute kernels, each
distinct word hashed once, and n-grams hashed from word hashes with numpy. Documents are processed
in chunks on a thread pool (Arrow and numpy release the GIL), which bounds memory and uses all
cores. The result is a flat ``uint64`` array of shingle hashes plus per-document offsets.
Word hashes can be kept (:func:`words`) and turned into n-grams of any size (:func:`ngrams`)
without folding the text again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_MULT = np.uint64(0x9E3779B97F4A7C15)
CHUNK_DOCS = 4096


@dataclass(frozen=True)
class Shingles:
    """Shingle hashes of many documents: doc ``i`` owns ``hashes[offsets[i]:offsets[i + 1]]``."""

    hashes: np.ndarray  # uint64
    offsets: np.ndarray  # int64, len = docs + 1

    @property
    def num_docs(self) -> int:
        return len(self.offsets) - 1

    def doc(self, i: int) -> np.ndarray:
        return self.hashes[self.offsets[i] : self.offsets[i + 1]]

    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def take(self, docs: np.ndarray) -> Shingles:
        """The shingles of the documents ``docs`` (indices), in that order."""
        docs = np.asarray(docs, dtype=np.int64)
        counts = self.counts()[docs]
        starts = self.offsets[docs]
        index = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(counts.sum())
        return Shingles(self.hashes[index], np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


# ASCII punctuation plus the Unicode punctuation common in Russian and English prose. (A negated
# Unicode letter class would say the same but makes RE2 three times slower on this hot path.)
_PUNCTUATION = r"[[:punct:]«»‹›“”„‟‘’‚‛–—―‐‑…·•§№¡¿]+"


def fold_text(texts: Sequence[str] | pa.Array) -> pa.Array:
    """NFKC, lower case, punctuation to spaces, ends trimmed. Whitespace runs are left to the split."""
    arr = texts if isinstance(texts, pa.Array) else pa.array(texts, pa.large_string())
    arr = pc.utf8_normalize(arr, "NFKC")
    arr = pc.utf8_lower(arr)
    arr = pc.replace_substring_regex(arr, _PUNCTUATION, " ")
    return pc.utf8_trim_whitespace(arr)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: spreads every input bit over the whole word."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def hash_strings(strings: pa.Array) -> np.ndarray:
    """A 64-bit hash of each string, computed over the Arrow bytes with numpy (no Python loop):
    a polynomial over the bytes, then the length and a final mix."""
    strings = strings.cast(pa.large_string())
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int64)[
        strings.offset : strings.offset + len(strings) + 1
    ]
    data = (
        np.frombuffer(strings.buffers()[2], dtype=np.uint8) if strings.buffers()[2] else np.zeros(0, np.uint8)
    )
    lengths = np.diff(offsets)
    out = np.zeros(len(strings), dtype=np.uint64)
    nonempty = lengths > 0
    if nonempty.any():
        raw = data[offsets[0] : offsets[-1]].astype(np.uint64) + np.uint64(1)
        pos = np.arange(len(raw)) - np.repeat(offsets[:-1] - offsets[0], lengths)
        with np.errstate(over="ignore"):
            powers = np.concatenate(
                [[np.uint64(1)], np.cumprod(np.full(int(lengths.max()) - 1, _MULT, dtype=np.uint64))]
            )
            terms = raw * powers[pos]
            out[nonempty] = np.add.reduceat(terms, (offsets[:-1] - offsets[0])[nonempty])
    with np.errstate(over="ignore"):
        return _mix(out ^ (lengths.astype(np.uint64) * np.uint64(0xD6E8FEB86659FD93)))


def _word_hashes(words: pa.Array) -> np.ndarray:
    encoded = pc.dictionary_encode(words)
    return hash_strings(encoded.dictionary)[encoded.indices.to_numpy(zero_copy_only=False)]


def _words_chunk(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Word hashes of one chunk of documents, in order, and the number of words each has."""
    folded = fold_text(texts)
    # NFKC has turned every Unicode space into an ASCII one, so the ASCII splitter is enough.
    lists = pc.ascii_split_whitespace(folded)
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    empty = pc.equal(folded, "").to_numpy(zero_copy_only=False)
    if empty.any():
        lengths[empty] = 0
        lists = pc.if_else(pa.array(empty), pa.scalar([], lists.type), lists)
    flat = pc.list_flatten(lists)
    return (_word_hashes(flat) if len(flat) else np.zeros(0, np.uint64)), lengths


def _grams(words: np.ndarray, lengths: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Shingle hashes from the word hashes of consecutive documents, and the number each has."""
    ends = np.cumsum(lengths)
    starts = ends - lengths
    total = len(words)

    # A document of L >= n words has L - n + 1 shingles; one of 1 <= L < n words is one shingle
    # made of all its words (so short texts still deduplicate); an empty one has none.
    per_doc = np.where(lengths >= n, lengths - n + 1, np.minimum(lengths, 1))
    with np.errstate(over="ignore"):
        padded = np.concatenate([words, np.zeros(n, np.uint64)])
        grams = padded[:total].copy()
        for j in range(1, n):
            grams = grams * _MULT + padded[j : total + j]
        # Short documents: recompute their single shingle over exactly their own words.
        short = np.flatnonzero((lengths > 0) & (lengths < n))
        for i in short:
            h = np.uint64(0)
            for w in words[starts[i] : ends[i]]:
                h = h * _MULT + w
            grams[starts[i]] = h
    # Keep each document's shingle starts: drop its last n-1 positions (for a short document, all
    # but its first), which are exactly the positions end-k for 1 <= k < min(L, n).
    valid = np.ones(total, dtype=bool)
    for k in range(1, n):
        valid[ends[lengths > k] - k] = False
    return _mix(grams[valid]), per_doc


def _chunks(arr: pa.Array) -> list[pa.Array]:
    return [arr.slice(i, CHUNK_DOCS) for i in range(0, len(arr), CHUNK_DOCS)]


def _joined(parts: list[tuple[np.ndarray, np.ndarray]]) -> Shingles:
    if not parts:
        return Shingles(np.zeros(0, np.uint64), np.zeros(1, np.int64))
    hashes = np.concatenate([p[0] for p in parts])
    counts = np.concatenate([p[1] for p in parts])
    return Shingles(hashes, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


def shingle(texts: Sequence[str] | pa.Array, n: int = 5, threads: int | None = None) -> Shingles:
    """Hash the word ``n``-grams of every text."""
    arr = texts if isinstance(texts, pa.Array) else pa.array(texts, pa.large_string())
    threads = threads or min(os.cpu_count() or 1, 8)
    with ThreadPoolExecutor(threads) as pool:
        return _joined(list(pool.map(lambda chunk: _grams(*_words_chunk(chunk), n), _chunks(arr))))


def words(texts: Sequence[str] | pa.Array, threads: int | None = None) -> Shingles:
    """The word hashes of every text, in order (``doc(i)`` is text ``i``'s words): folding and
    splitting done once for callers that need n-grams of several sizes (see :func:`ngrams`)."""
    arr = texts if isinstance(texts, pa.Array) else pa.array(texts, pa.large_string())
    threads = threads or min(os.cpu_count() or 1, 8)
    with ThreadPoolExecutor(threads) as pool:
        return _joined(list(pool.map(_words_chunk, _chunks(arr))))


def ngrams(word_hashes: Shingles, n: int, threads: int | None = None) -> Shingles:
    """The word ``n``-gram shingles of documents given by :func:`words`: the same hashes that
    :func:`shingle` gives for the same texts and ``n``."""
    counts = word_hashes.counts()
    bounds = list(range(0, word_hashes.num_docs, CHUNK_DOCS))
    threads = threads or min(os.cpu_count() or 1, 8)

    def chunk(first: int) -> tuple[np.ndarray, np.ndarray]:
        last = min(first + CHUNK_DOCS, word_hashes.num_docs)
        lo, hi = word_hashes.offsets[first], word_hashes.offsets[last]
        return _grams(word_hashes.hashes[lo:hi], counts[first:last], n)

    with ThreadPoolExecutor(threads) as pool:
        return _joined(list(pool.map(chunk, bounds)))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard of two shingle arrays, as sets."""
    a, b = np.unique(a), np.unique(b)
    if not len(a) and not len(b):
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)

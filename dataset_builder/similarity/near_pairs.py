"""Near-duplicate pairs of a stream of texts: shingles -> signatures -> band rows on disk ->
candidates band by band -> exact Jaccard.

Memory holds one chunk of documents at a time while shingling and signing, one band's rows while
banding, and the candidate pairs; everything per document lives in :class:`SpillStore` files.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from dataset_builder.similarity.banding import band_pairs
from dataset_builder.similarity.index import lsh_params, verify
from dataset_builder.similarity.minhash import signatures
from dataset_builder.similarity.shingles import shingle
from dataset_builder.similarity.spill import SpillStore

# Documents shingled and signed together: ~2 KB of shingles each for 1.5k characters.
CHUNK_DOCS = 32_768


class NearDuplicateFinder:
    """Feed texts with :meth:`add` in order (document ``i`` is the ``i``-th text fed), then
    :meth:`pairs`. ``folder`` receives the spill files; the caller removes it."""

    def __init__(
        self, folder: Path, *, n: int = 5, num_perm: int = 128, threshold: float = 0.8, seed: int = 1
    ) -> None:
        self.n, self.num_perm, self.threshold, self.seed = n, num_perm, threshold, seed
        self.bands, self.rows = lsh_params(threshold, num_perm)
        self.store = SpillStore(folder, self.bands, self.rows)
        self._pending: list[pa.Array] = []
        self._pending_docs = 0

    def add(self, texts: Sequence[str] | pa.Array) -> None:
        arr = texts if isinstance(texts, pa.Array) else pa.array(texts, pa.large_string())
        if not len(arr):
            return
        self._pending.append(arr.cast(pa.large_string()))
        self._pending_docs += len(arr)
        if self._pending_docs >= CHUNK_DOCS:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        texts = pa.concat_arrays(self._pending)
        self._pending, self._pending_docs = [], 0
        sh = shingle(texts, n=self.n)
        self.store.append(sh, signatures(sh, num_perm=self.num_perm, seed=self.seed))

    @property
    def num_docs(self) -> int:
        return self.store.num_docs + self._pending_docs

    def candidates(self) -> np.ndarray:
        """Distinct candidate pairs ``(x, y)``, ``x < y``, sorted, over all bands."""
        self._flush()
        found = np.zeros(0, np.int64)
        width = np.int64(max(self.store.num_docs, 1))
        for b in range(self.bands):
            pairs = band_pairs(self.store.band(b))
            found = np.union1d(found, pairs[:, 0] * width + pairs[:, 1])
        return np.stack([found // width, found % width], axis=1)

    def pairs(self) -> list[tuple[int, int, float]]:
        """Pairs ``(i, j, jaccard)`` with ``i < j`` whose exact shingle Jaccard is >= the threshold."""
        candidates = self.candidates()
        reader = self.store.shingle_reader()
        try:
            return verify(map(tuple, candidates.tolist()), reader, self.threshold)
        finally:
            reader.close()


def find_near_duplicates(
    texts: Sequence[str] | pa.Array | Iterable[Sequence[str] | pa.Array],
    *,
    n: int = 5,
    num_perm: int = 128,
    threshold: float = 0.8,
    seed: int = 1,
    workdir: Path | None = None,
) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, jaccard)`` with ``i < j`` whose exact shingle Jaccard is >= ``threshold``.

    ``texts`` is one sequence of texts or an iterable of chunks of them; spill files go to a
    temporary folder under ``workdir`` (default: the system's) and are removed afterwards.
    """
    chunks = [texts] if isinstance(texts, pa.Array) or _is_texts(texts) else texts
    with tempfile.TemporaryDirectory(prefix="near-dedup-", dir=workdir) as tmp:
        finder = NearDuplicateFinder(Path(tmp), n=n, num_perm=num_perm, threshold=threshold, seed=seed)
        for chunk in chunks:
            finder.add(chunk)
        return finder.pairs()


def _is_texts(value: object) -> bool:
    return isinstance(value, list | tuple) and (not value or isinstance(value[0], str))

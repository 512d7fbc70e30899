"""Candidate pairs from a datasketch ``MinHashLSH`` index, exact-Jaccard verification, clusters."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from dataset_builder.dedup.minhash import EMPTY
from dataset_builder.dedup.shingles import Shingles, jaccard

MAX_BUCKET_PAIRS = 32
# Our signatures are only ever compared with each other; datasketch asks for a scheme label to
# guard against mixing hash schemes, and its own labels are the only ones it accepts.
_SCHEME = "legacy"


def lsh_params(threshold: float, num_perm: int, min_recall: float = 0.995) -> tuple[int, int]:
    """Bands x rows for a threshold. Every candidate is verified with exact Jaccard afterwards, so
    a false candidate costs only a comparison while a missed one is a duplicate kept: take the
    layout with the most rows per band (fewest false candidates) that still makes a pair at the
    threshold a candidate with probability >= ``min_recall``. (datasketch's own choice weighs both
    errors equally: at 0.8 with 128 permutations it finds a pair of Jaccard 0.8 only 40% of the time.)
    """
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= min_recall:
            return bands, rows
    return num_perm, 1


def colliding(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Indices of documents that share a band with some other document.

    A document that shares no band with any other can have no candidate pair, so only these need
    to enter the LSH index: the candidates are exactly those of indexing everything.
    """
    hit = np.zeros(len(sigs), dtype=bool)
    with np.errstate(over="ignore"):
        for band in range(bands):
            block = sigs[:, band * rows : (band + 1) * rows].astype(np.uint64)
            key = np.zeros(len(sigs), dtype=np.uint64)
            for col in range(rows):
                key = (key ^ block[:, col]) * np.uint64(0x100000001B3) + np.uint64(col + 1)
            order = np.argsort(key, kind="stable")
            same = key[order][1:] == key[order][:-1]
            hit[order[1:][same]] = True
            hit[order[:-1][same]] = True
    empty = (sigs == EMPTY).all(axis=1)
    return np.flatnonzero(hit & ~empty)


def build_lsh(sigs: np.ndarray, threshold: float, keys: Iterable[int] | None = None):  # -> MinHashLSH
    """Insert signatures (all, or the given row indices) into a datasketch ``MinHashLSH``."""
    from datasketch import LeanMinHash, MinHashLSH

    num_perm = sigs.shape[1]
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=lsh_params(threshold, num_perm))
    keys = range(len(sigs)) if keys is None else keys
    with lsh.insertion_session() as session:
        for key in keys:
            row = sigs[key]
            if row[0] == EMPTY and (row == EMPTY).all():
                continue
            session.insert(
                int(key), LeanMinHash(seed=1, hashvalues=row, scheme=_SCHEME), check_duplication=False
            )
    return lsh


def candidate_pairs(lsh) -> set[tuple[int, int]]:
    """Every pair of documents that share a bucket in some band (capped per large bucket)."""
    pairs: set[tuple[int, int]] = set()
    for table in lsh.hashtables:
        for bucket_key in table.keys():  # noqa: SIM118 - a datasketch storage, not a dict
            members = sorted(table.get(bucket_key))
            if len(members) < 2:
                continue
            anchors = members[:MAX_BUCKET_PAIRS]
            for i, x in enumerate(members):
                for y in anchors[: i if i < len(anchors) else len(anchors)]:
                    pairs.add((y, x) if y < x else (x, y))
    return pairs


def verify(
    pairs: Iterable[tuple[int, int]], shingles: Shingles, threshold: float
) -> list[tuple[int, int, float]]:
    unique = {}

    def doc(i: int) -> np.ndarray:
        if i not in unique:
            unique[i] = np.unique(shingles.doc(i))
        return unique[i]

    out = []
    for x, y in sorted(pairs):
        j = jaccard(doc(x), doc(y))
        if j >= threshold:
            out.append((x, y, j))
    return out


class UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, x: int, y: int) -> None:
        rx, ry = self.find(x), self.find(y)
        if rx != ry:
            # The smaller index is the root, so roots do not depend on the order of unions.
            if rx < ry:
                self.parent[ry] = rx
            else:
                self.parent[rx] = ry


def clusters(n: int, edges: Iterable[tuple[int, int, float]]) -> dict[int, list[int]]:
    uf = UnionFind(n)
    for x, y, _ in edges:
        uf.union(x, y)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(uf.find(i), []).append(i)
    return {root: members for root, members in groups.items() if len(members) > 1}

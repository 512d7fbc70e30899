"""Shingles and LSH band rows of many documents, kept in Arrow IPC files instead of memory.

Documents arrive chunk by chunk. Each chunk's shingles are appended to ``shingles.arrow`` (one
``large_list<uint64>`` per document) and each band's slice of its signatures to
``band-NNN.arrow`` (one ``fixed_size_list<uint32>`` per document), so a band is read back alone
(4 bytes x rows per band x documents) and a document's shingles are read through a memory map
only when one of its candidate pairs is verified. Files are uncompressed so they can be mapped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from dataset_builder.similarity.shingles import Shingles


class SpillStore:
    def __init__(self, folder: Path, bands: int, rows: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.bands, self.rows = bands, rows
        self.num_docs = 0
        self._shingle_schema = pa.schema([("shingles", pa.large_list(pa.uint64()))])
        self._band_schema = pa.schema([("rows", pa.list_(pa.uint32(), rows))])
        self._shingles = pa.ipc.new_file(folder / "shingles.arrow", self._shingle_schema)
        self._band_files = [pa.ipc.new_file(self._band_path(b), self._band_schema) for b in range(bands)]
        self._closed = False

    def _band_path(self, band: int) -> Path:
        return self.folder / f"band-{band:03d}.arrow"

    def append(self, shingles: Shingles, sigs: np.ndarray) -> None:
        """The next ``shingles.num_docs`` documents: their shingles and ``(docs, num_perm)`` signatures."""
        lists = pa.LargeListArray.from_arrays(pa.array(shingles.offsets), pa.array(shingles.hashes))
        self._shingles.write_table(pa.table([lists], schema=self._shingle_schema))
        for b, writer in enumerate(self._band_files):
            block = np.ascontiguousarray(sigs[:, b * self.rows : (b + 1) * self.rows]).reshape(-1)
            column = pa.FixedSizeListArray.from_arrays(pa.array(block), self.rows)
            writer.write_table(pa.table([column], schema=self._band_schema))
        self.num_docs += shingles.num_docs

    def close(self) -> None:
        if not self._closed:
            self._shingles.close()
            for writer in self._band_files:
                writer.close()
            self._closed = True

    def band(self, band: int) -> np.ndarray:
        """Band ``band``'s ``(docs, rows)`` uint32 rows of every document, in document order."""
        self.close()
        with pa.memory_map(str(self._band_path(band))) as source:
            table = pa.ipc.open_file(source).read_all()
            parts = [chunk.flatten().to_numpy() for chunk in table.column(0).chunks]
            flat = np.concatenate(parts) if parts else np.zeros(0, np.uint32)
        return flat.reshape(-1, self.rows)

    def shingle_reader(self) -> ShingleReader:
        self.close()
        return ShingleReader(self.folder / "shingles.arrow")


class ShingleReader:
    """Random access to each document's shingles through a memory map (see :class:`SpillStore`)."""

    def __init__(self, path: Path) -> None:
        self._source = pa.memory_map(str(path))
        reader = pa.ipc.open_file(self._source)
        self._offsets: list[np.ndarray] = []
        self._values: list[np.ndarray] = []
        firsts = [0]
        for k in range(reader.num_record_batches):
            lists = reader.get_batch(k).column(0)
            self._offsets.append(lists.offsets.to_numpy())
            self._values.append(lists.values.to_numpy())
            firsts.append(firsts[-1] + len(lists))
        self._firsts = np.array(firsts, dtype=np.int64)

    def doc(self, i: int) -> np.ndarray:
        chunk = int(np.searchsorted(self._firsts, i, side="right")) - 1
        local = i - int(self._firsts[chunk])
        offsets = self._offsets[chunk]
        return self._values[chunk][offsets[local] : offsets[local + 1]]

    def close(self) -> None:
        self._offsets, self._values = [], []
        self._source.close()

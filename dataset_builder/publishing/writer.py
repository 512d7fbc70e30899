"""The Arrow layer of a build: batches in, one Parquet file per split out, plus a content hash.

Row groups have a fixed size whatever the batch sizes upstream, and the content hash is computed
over a canonical JSON rendering of every row (not over Parquet bytes), so it is the same for the
same data whichever pyarrow wrote it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dataset_builder.publishing.json_lines import canonical_json_lines

ROW_GROUP_ROWS = 10_000
HASH_ROWS = 2_500
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
}


def split_file(split: str) -> str:
    return f"data/{split}-00000-of-00001.parquet"


class _SplitWriter:
    def __init__(self, path: Path, schema: pa.Schema) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        self.writer = pq.ParquetWriter(path, schema, **PARQUET_OPTIONS)
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.rows = 0
        self.digest = hashlib.sha256()

    def add(self, table: pa.Table) -> None:
        # Sources of one build may differ in the columns an adapter keeps of its own (alpaca's
        # `input`, humaneval's `task_id`): a column this batch lacks is null in its rows.
        for field in self.schema:
            if field.name not in table.schema.names:
                table = table.append_column(field.name, pa.nulls(table.num_rows, field.type))
        table = table.select(self.schema.names).cast(self.schema)
        self.pending.append(table)
        self.pending_rows += table.num_rows
        self.rows += table.num_rows
        while self.pending_rows >= ROW_GROUP_ROWS:
            self._write(ROW_GROUP_ROWS)

    def _write(self, n: int) -> None:
        merged = pa.concat_tables(self.pending).combine_chunks()
        group = merged.slice(0, n)
        # Hashed in pieces of a row group (rows in the order written): few calls to polars, and
        # the JSON of a few thousand rows in memory at a time.
        for start in range(0, n, HASH_ROWS):
            self.digest.update(canonical_json_lines(group.slice(start, HASH_ROWS)))
        self.writer.write_table(group, row_group_size=n)
        rest = merged.slice(n)
        self.pending = [rest] if rest.num_rows else []
        self.pending_rows = rest.num_rows

    def close(self) -> None:
        if self.pending_rows:
            self._write(self.pending_rows)
        self.writer.close()


class SplitWriter:
    """Route batches by their ``split`` column into one Parquet file per split."""

    def __init__(self, root: Path, splits: tuple[str, ...] = ("train", "test")) -> None:
        self.root = root
        self.splits = splits
        self.schema: pa.Schema | None = None
        self._writers: dict[str, _SplitWriter] = {}
        self.counts: dict[str, dict[str, dict[str, int]]] = {}

    def write(self, batch: pa.Table) -> pa.Table | None:
        """Route a batch; return the rows it could not route (no split label, or an unknown one),
        for the caller to reject: a row is never dropped here without a trace."""
        if "split" in batch.schema.names:
            # A batch whose labels are all missing can arrive typed null; compare as strings.
            labels = batch.column("split").cast(pa.string())
            data = batch.drop_columns(["split"])
        else:
            labels = pa.array(["train"] * batch.num_rows, pa.string())
            data = batch
        if self.schema is None:
            self.schema = data.schema
            for split in self.splits:
                self._writers[split] = _SplitWriter(self.root / split_file(split), self.schema)
        for split in self.splits:
            part = data.filter(pc.equal(labels, split))
            if part.num_rows:
                self._writers[split].add(part)
                self._count(split, part)
        known = pc.fill_null(pc.is_in(labels, pa.array(self.splits, pa.string())), False)
        unrouted = batch.filter(pc.invert(known))
        return unrouted if unrouted.num_rows else None

    def _count(self, split: str, part: pa.Table) -> None:
        counts = self.counts.setdefault(split, {"source": {}, "lang": {}})
        for column in ("source", "lang"):
            # value_counts lists values in the order they first occur, as counting row by row did.
            for item in pc.value_counts(part.column(column)).to_pylist():
                value = item["values"]
                counts[column][value] = counts[column].get(value, 0) + item["counts"]

    def close(self) -> dict[str, Any]:
        """Finish every file; return rows per split and the content hash over all splits.

        A split that got no rows is not published: `datasets` refuses a declared split without
        data, and a version should not promise a test split it does not have.
        """
        for split, writer in self._writers.items():
            writer.close()
            if writer.rows == 0:
                (self.root / split_file(split)).unlink()
        kept = {split: w for split, w in self._writers.items() if w.rows}
        total = hashlib.sha256()
        for split in sorted(kept):
            total.update(f"{split}\n{kept[split].digest.hexdigest()}\n".encode())
        rows = {split: kept[split].rows for split in self.splits if split in kept}
        return {"rows": rows, "content_hash": f"sha256:{total.hexdigest()}"}


def write_table(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=ROW_GROUP_ROWS, **PARQUET_OPTIONS)

"""Readers: files and Hub datasets in, ``(key, record, size)`` out, in a deterministic order.

File-level problems (no file, unreadable, not UTF-8, broken JSON or CSV, a damaged Parquet file or
gzip stream, empty file) raise :class:`InputError` naming the file and line. Records are yielded one
at a time, so a JSONL file of any size streams. Files ending in ``.gz`` are decompressed.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Iterator
from glob import glob
from pathlib import Path
from typing import IO, Any

from dataset_builder.errors import InputError
from dataset_builder.network import check_hub_reachable, hub_endpoint, hub_offline

Record = tuple[str, Any, int]  # (source_key, record, size in bytes)

_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def expand_paths(patterns: list[str], base: Path) -> list[Path]:
    files: list[Path] = []
    for pattern in patterns:
        full = pattern if os.path.isabs(pattern) else str(base / pattern)
        matches = sorted(Path(p) for p in glob(full, recursive=True) if Path(p).is_file())
        if not matches:
            if Path(full).is_dir():
                raise InputError(
                    f"{full}: is a folder; name its files, e.g. '{pattern.rstrip('/')}/*.jsonl' "
                    f"or '{pattern.rstrip('/')}/**/*.parquet'"
                )
            raise InputError(f"{full}: no file matches")
        files.extend(m for m in matches if m not in files)
    return files


def detect_format(path: Path, declared: str) -> str:
    if declared != "auto":
        return declared
    suffixes = [s for s in path.suffixes if s != ".gz"]
    fmt = _EXTENSIONS.get(suffixes[-1].lower() if suffixes else "")
    if fmt is None:
        raise InputError(f"{path}: cannot tell the format from the extension; set 'format' in the source")
    return fmt


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _open(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed when it ends in ``.gz``."""
    try:
        return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _read_all(path: Path) -> bytes:
    with _open(path) as fh:
        return fh.read()


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"{path}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); re-encode the file as UTF-8"
        ) from None


def _non_empty(path: Path, data: bytes) -> None:
    if not data.strip():
        raise InputError(f"{path}: file is empty")


def _json(path: Path, text: str, line: int | None = None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"{path}:{line if line is not None else exc.lineno}"
        raise InputError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        where = f"{path}:{line}" if line is not None else str(path)
        raise InputError(f"{where}: JSON nested too deeply to read") from None


def read_jsonl(path: Path) -> Iterator[Record]:
    with _open(path) as fh:
        seen = False
        line_no = 0
        while True:
            try:
                raw = fh.readline()
            except (OSError, EOFError, zlib.error) as exc:
                raise InputError(f"{path}:{line_no + 1}: cannot read ({_first_line(exc)})") from None
            if not raw:
                break
            line_no += 1
            if not raw.strip():
                continue
            seen = True
            text = _decode(path, raw) if line_no == 1 else _decode_line(path, raw, line_no)
            yield f":{line_no}", _json(path, text, line_no), len(raw)
        if not seen:
            raise InputError(f"{path}: file is empty")


def _decode_line(path: Path, raw: bytes, line_no: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}:{line_no}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
            "re-encode the file as UTF-8"
        ) from None


def _read_bytes(path: Path) -> bytes:
    try:
        return _read_all(path)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: cannot read ({_first_line(exc)})") from None


def read_json(path: Path) -> Iterator[Record]:
    data = _read_bytes(path)
    _non_empty(path, data)
    doc = _json(path, _decode(path, data))
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        doc = doc["data"]
    if not isinstance(doc, list):
        raise InputError(f"{path}: expected a JSON array of objects, found {type(doc).__name__}")
    if not doc:
        raise InputError(f"{path}: file is empty (no records)")
    for i, record in enumerate(doc):
        size = len(json.dumps(record, ensure_ascii=False).encode("utf-8"))
        yield f"[{i}]", record, size


def _parquet_file(path: Path) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # Arrow raises several types for one cause: bytes that are not Parquet
        raise InputError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None


def read_parquet(path: Path) -> Iterator[Record]:
    pf = _parquet_file(path)
    if pf.metadata.num_rows == 0:
        raise InputError(f"{path}: file is empty (no rows)")
    index = 0
    # Row group by row group, so a damaged one is named with the rows it holds.
    for group in range(pf.num_row_groups):
        first, rows = index, pf.metadata.row_group(group).num_rows
        batches = pf.iter_batches(batch_size=4096, row_groups=[group])
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except Exception as exc:  # a damaged page past a readable footer
                raise InputError(
                    f"{path}: damaged Parquet row group {group} (rows {first} to {first + rows - 1}): "
                    f"{_first_line(exc)}"
                ) from None
            for record in batch.to_pylist():
                yield f"[{index}]", record, _approx_size(record)
                index += 1


def read_csv(path: Path) -> Iterator[Record]:
    import csv

    data = _read_bytes(path)
    _non_empty(path, data)
    text = _decode(path, data)
    # A field longer than csv's default limit (128 KiB) is a row for max_row_bytes to reject,
    # not a reason to stop reading the file.
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
    reader = csv.DictReader(text.splitlines(keepends=True))
    try:
        if not reader.fieldnames:
            raise InputError(f"{path}: no header row")
        empty = True
        for record in reader:
            empty = False
            if None in record:
                raise InputError(f"{path}:{reader.line_num}: more fields than the header has")
            yield f":{reader.line_num}", record, sum(len(v or "") for v in record.values())
    except csv.Error as exc:
        raise InputError(f"{path}:{reader.line_num}: invalid CSV ({_first_line(exc)})") from None
    if empty:
        raise InputError(f"{path}: file is empty (header only)")


def _approx_size(record: Any) -> int:
    if isinstance(record, str):
        return len(record.encode("utf-8"))
    if isinstance(record, dict):
        return sum(_approx_size(v) for v in record.values())
    if isinstance(record, list):
        return sum(_approx_size(v) for v in record)
    return 8


READERS = {"jsonl": read_jsonl, "json": read_json, "parquet": read_parquet, "csv": read_csv}


def file_columns(path: Path, fmt: str) -> set[str] | None:
    """The columns a columnar file declares, or None for formats without a header."""
    if fmt == "parquet":
        return set(_parquet_file(path).schema_arrow.names)
    return None


def read_hub(
    hub_id: str,
    revision: str | None,
    split: str,
    data_files: list[str] | None,
    fingerprint: dict[str, Any] | None = None,
) -> Iterator[Record]:
    """Records of a Hub dataset split; ``fingerprint`` receives the commit it resolved to."""
    if not hub_offline():
        check_hub_reachable()
    import datasets

    try:
        ds = datasets.load_dataset(hub_id, revision=revision, split=split, data_files=data_files)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"hub dataset {hub_id}@{revision or 'main'} split {split!r}: {first}") from None
    if fingerprint is not None:
        fingerprint["rows"] = ds.num_rows
        fingerprint["datasets_fingerprint"] = ds._fingerprint
        if not hub_offline():
            from huggingface_hub import HfApi

            try:
                fingerprint["commit"] = (
                    HfApi(endpoint=hub_endpoint()).dataset_info(hub_id, revision=revision).sha
                )
            except Exception as exc:  # the data loaded; a missing commit id is worth a note, not a failure
                fingerprint["commit"] = f"unknown ({type(exc).__name__})"
    for i, record in enumerate(ds):
        yield f"{split}[{i}]", record, _approx_size(record)

"""Readers: files and Hub datasets in, ``(key, record, size)`` out, in a deterministic order.

File-level problems (no file, not UTF-8, broken JSON, empty file) raise :class:`InputError` naming
the file and line. Records are yielded one at a time, so a JSONL file of any size streams.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterator
from glob import glob
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from dataset_builder.errors import InputError

Record = tuple[str, Any, int]  # (source_key, record, size in bytes)

_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def expand_paths(patterns: list[str], base: Path) -> list[Path]:
    files: list[Path] = []
    for pattern in patterns:
        full = pattern if os.path.isabs(pattern) else str(base / pattern)
        matches = sorted(Path(p) for p in glob(full, recursive=True) if Path(p).is_file())
        if not matches:
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


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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


def read_jsonl(path: Path) -> Iterator[Record]:
    with path.open("rb") as fh:
        seen = False
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            seen = True
            text = _decode(path, raw) if line_no == 1 else _decode_line(path, raw, line_no)
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"{path}:{line_no}: invalid JSON ({exc.msg} at column {exc.colno})"
                ) from None
            yield f":{line_no}", record, len(raw)
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


def read_json(path: Path) -> Iterator[Record]:
    data = path.read_bytes()
    _non_empty(path, data)
    text = _decode(path, data)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        doc = doc["data"]
    if not isinstance(doc, list):
        raise InputError(f"{path}: expected a JSON array of objects, found {type(doc).__name__}")
    if not doc:
        raise InputError(f"{path}: file is empty (no records)")
    for i, record in enumerate(doc):
        size = len(json.dumps(record, ensure_ascii=False).encode("utf-8"))
        yield f"[{i}]", record, size


def read_parquet(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    if pf.metadata.num_rows == 0:
        raise InputError(f"{path}: file is empty (no rows)")
    index = 0
    for batch in pf.iter_batches(batch_size=4096):
        for record in batch.to_pylist():
            yield f"[{index}]", record, _approx_size(record)
            index += 1


def read_csv(path: Path) -> Iterator[Record]:
    import csv

    data = path.read_bytes()
    _non_empty(path, data)
    text = _decode(path, data)
    reader = csv.DictReader(text.splitlines(keepends=True))
    if not reader.fieldnames:
        raise InputError(f"{path}: no header row")
    empty = True
    for record in reader:
        empty = False
        if None in record:
            raise InputError(f"{path}:{reader.line_num}: more fields than the header has")
        yield f":{reader.line_num}", record, sum(len(v or "") for v in record.values())
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
        import pyarrow.parquet as pq

        return set(pq.read_schema(path).names)
    return None


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def check_host_reachable(endpoint: str, what: str, hint: str = "", timeout: float = 5.0) -> None:
    """Fail in seconds, not after a client's retry loop, when a server cannot be reached."""
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as exc:
        raise InputError(f"{endpoint}: {what} unreachable ({exc.__class__.__name__}: {exc}){hint}") from None


def check_hub_reachable(timeout: float = 5.0) -> None:
    check_host_reachable(
        hub_endpoint(),
        "Hub",
        "; use a local copy of the data (type = 'local') or set HF_HUB_OFFLINE=1 to use the cache",
        timeout,
    )


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

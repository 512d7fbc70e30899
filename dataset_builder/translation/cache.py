"""A persistent translation cache: SQLite, keyed by model, settings and sentence.

A cache entry is only ever read back under the same namespace: a hash of the installed package's
files (not its name, version or archive) and of every decoding and runtime setting that can change
what the engine writes. Each finished chunk is committed, so a build killed mid-way loses at most
the chunk in flight, and a rebuild translates nothing it has translated before.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dataset_builder.paths import CACHE_HOME, user_path

CACHE_ENV = "DATASET_BUILDER_TRANSLATION_CACHE"


def default_cache_path() -> Path:
    return user_path(None, CACHE_ENV, CACHE_HOME / "translations.sqlite")


def namespace_settings(engine: Any) -> dict[str, Any]:
    """Everything about an engine that can change a translation, as plain data.

    ``engine`` is a :class:`dataset_builder.translation.engine.Engine`. All of its decoding settings
    (beam, length penalty, maximum length, sampling, unknown-token handling...) and all of its
    runtime settings go in, whole dataclasses rather than a chosen few, so a setting added later is
    in the key without anyone remembering to add it: compute type and device change the arithmetic,
    batch size and thread counts can change the order of floating-point sums. The device and
    compute type are also taken as resolved ("auto" means different things on different machines),
    and the CTranslate2 version, whose kernels may change between releases.
    """
    from importlib import metadata

    from dataset_builder.translation.packages import content_sha256

    try:
        ct2 = metadata.version("ctranslate2")
    except metadata.PackageNotFoundError:
        ct2 = "not installed"
    return {
        "package_files_sha256": content_sha256(engine.package.path),
        "target_prefix": engine.package.target_prefix,
        "decode": asdict(engine.decode),
        "runtime": asdict(engine.runtime),
        "device": engine.device,
        "compute_type": getattr(engine.translator, "compute_type", engine.runtime.compute_type),
        "ctranslate2": ct2,
    }


def cache_namespace(engine: Any) -> str:
    """The cache namespace for translations made by ``engine`` (see :func:`namespace_settings`)."""
    text = json.dumps(namespace_settings(engine), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class TranslationCache:
    def __init__(self, path: Path, namespace: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.namespace = namespace
        self.db = sqlite3.connect(path, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS translations ("
            " namespace TEXT NOT NULL, key BLOB NOT NULL, source TEXT NOT NULL, target TEXT NOT NULL,"
            " PRIMARY KEY (namespace, key))"
        )
        self.db.commit()

    @staticmethod
    def _key(text: str) -> bytes:
        return hashlib.sha256(text.encode("utf-8")).digest()

    def get_many(self, texts: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(texts), 500):
            chunk = texts[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"SELECT source, target FROM translations WHERE namespace = ? AND key IN ({marks})",
                [self.namespace, *(self._key(t) for t in chunk)],
            )
            found.update(rows.fetchall())
        return found

    def put_many(self, pairs: dict[str, str]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO translations (namespace, key, source, target) VALUES (?, ?, ?, ?)",
            [(self.namespace, self._key(s), s, t) for s, t in pairs.items()],
        )
        self.db.commit()

    def close(self) -> None:
        self.db.close()

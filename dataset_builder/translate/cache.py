"""A persistent translation cache: SQLite, keyed by package, decode settings and sentence.

Each finished chunk is committed, so a build killed mid-way loses at most the chunk in flight, and
a rebuild translates nothing it has translated before.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from dataset_builder.paths import CACHE_HOME, user_path

CACHE_ENV = "DATASET_BUILDER_TRANSLATION_CACHE"


def default_cache_path() -> Path:
    return user_path(None, CACHE_ENV, CACHE_HOME / "translations.sqlite")


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

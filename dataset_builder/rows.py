"""The canonical row: what every source adapter produces and every stage consumes.

A row is ``messages`` (a list of ``{role, content}`` turns, roles system/user/assistant) plus
provenance: the recipe's ``source`` name, ``source_key`` (where the row lives in its source:
``file:line`` or ``split[index]``), ``row_id`` (a stable hash of source and content) and ``lang``
(the language the text is in, as declared by the source or set by a translating stage).
A translating stage adds ``source_messages`` (the turns before translation) and ``source_lang``.
Stages may add columns (``split``, ``text``, ``dup_cluster``...); they never remove these.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

ROLES = ("system", "user", "assistant")

MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES_TYPE = pa.list_(MESSAGE_TYPE)

CANONICAL_SCHEMA = pa.schema(
    [
        ("row_id", pa.string()),
        ("source", pa.string()),
        ("source_key", pa.string()),
        ("lang", pa.string()),
        ("messages", MESSAGES_TYPE),
    ]
)

REJECTED_SCHEMA = pa.schema(
    [
        ("row_id", pa.string()),
        ("source", pa.string()),
        ("source_key", pa.string()),
        ("stage", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        # For duplicates: the row id of the row that was kept in this one's place.
        ("duplicate_of", pa.string()),
        ("messages", MESSAGES_TYPE),
        # The original record as JSON, for rows rejected before they could become messages.
        ("raw", pa.string()),
        # What a transforming stage made of the row before rejecting it (a translation that
        # failed its checks), beside ``messages``, the row as it came in.
        ("attempted_messages", MESSAGES_TYPE),
    ]
)

Message = dict[str, str]


def canonical_json(value: Any) -> str:
    """A byte-stable JSON rendering (sorted keys, no whitespace, UTF-8 kept)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def content_key(messages: Sequence[Message]) -> str:
    """One string that identifies the content of a conversation, for hashing."""
    return canonical_json([[m["role"], m["content"]] for m in messages])


def make_row_id(source: str, messages: Sequence[Message]) -> str:
    """Stable id: the same source and content always give the same id, on any machine."""
    digest = hashlib.sha256()
    digest.update(source.encode("utf-8"))
    digest.update(b"\x00")
    digest.update(content_key(messages).encode("utf-8"))
    return digest.hexdigest()[:32]

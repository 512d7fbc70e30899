"""Normalize text without changing what it means or how code is laid out.

Unicode NFC (composes, never decomposes: й and ё stay single characters), Windows and old Mac line
ends to ``\\n``, BOM and NUL removed, trailing whitespace removed from every line, blank lines
removed from the start and end of a turn. Leading whitespace is never touched, so code indentation
survives byte for byte. Turns that end up empty are removed (counted, not rejected: a row without
an answer is the quality stage's business).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from dataset_builder.stages.base import RowStage, StageConfig, StageContext

_TRAILING_WS = re.compile(r"[ \t\f\v\u00a0\u2000-\u200b\u3000]+(?=\n|$)")
_REMOVED_CHARS = str.maketrans({"\ufeff": None, "\x00": None})


class NormalizeConfig(StageConfig):
    unicode_form: str = "NFC"
    strip_trailing_whitespace: bool = True
    drop_empty_turns: bool = True


def normalize_text(text: str, *, form: str = "NFC", strip_trailing: bool = True) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_REMOVED_CHARS)
    text = unicodedata.normalize(form, text)
    if strip_trailing:
        text = _TRAILING_WS.sub("", text)
    # Only whole blank lines go from the ends: the first line's indentation is code.
    return text.strip("\n")


class Normalize(RowStage):
    name = "normalize"
    Config = NormalizeConfig

    def __init__(self, config: NormalizeConfig | None = None) -> None:
        super().__init__(config)
        if self.config.unicode_form not in ("NFC", "NFKC"):
            # NFD/NFKD split й into и + combining breve: never acceptable for Russian text.
            raise ValueError("unicode_form must be NFC or NFKC")

    def process(self, row: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
        cfg = self.config
        turns = []
        for message in row["messages"]:
            content = normalize_text(
                message["content"], form=cfg.unicode_form, strip_trailing=cfg.strip_trailing_whitespace
            )
            if content != message["content"]:
                ctx.count("turns_changed")
            if cfg.drop_empty_turns and not content.strip():
                ctx.count("empty_turns_removed")
                continue
            turns.append({"role": message["role"], "content": content})
        row["messages"] = turns
        return row

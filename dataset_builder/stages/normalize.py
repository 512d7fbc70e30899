"""Normalize the prose of a turn without touching its code.

Prose (and the whitespace and Markdown around it) gets Unicode NFC (composes, never decomposes: й
and ё stay single characters), Windows and old Mac line ends turned into ``\\n``, BOM and NUL
removed, trailing whitespace removed from every line, blank lines removed from the start and end
of the turn. Code, as the segmenter finds it, passes through byte for byte: a ``return x \\n``
line or a CRLF file keeps its bytes from the source file to the published row. ``normalize_code =
true`` applies the same rules inside code too. Turns that end up empty are removed (counted, not
rejected: a row without an answer is the quality stage's business).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataset_builder.stages.base import RowStage, StageConfig, StageContext
from dataset_builder.stages.turn_columns import Turns
from dataset_builder.translation.segment import segment

_TRAILING_WS = re.compile(r"[ \t\f\v\u00a0\u2000-\u200b\u3000]+(?=\n)")
_TRAILING_WS_AT_END = re.compile(r"[ \t\f\v\u00a0\u2000-\u200b\u3000]+$")
_REMOVED_CHARS = str.maketrans({"\ufeff": None, "\x00": None})
# A text this RE2 pattern does not find, and already in the Unicode form, comes out of
# normalize_text unchanged: it has no line end to rewrite, no BOM or NUL, no trailing whitespace
# before a line end or at its end, and no blank line at its start or end. ($ and ^ are the text's
# ends in RE2.)
_WS_CLASS = r"[ \t\f\v\x{a0}\x{2000}-\x{200b}\x{3000}]"
_MAY_CHANGE = rf"[\r\x{{feff}}\x00]|{_WS_CLASS}\n|{_WS_CLASS}$|^\n|\n$"


class NormalizeConfig(StageConfig):
    unicode_form: str = "NFC"
    strip_trailing_whitespace: bool = True
    drop_empty_turns: bool = True
    normalize_code: bool = False


def _normalize_chunk(text: str, form: str, strip_trailing: bool, at_end: bool) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_REMOVED_CHARS)
    text = unicodedata.normalize(form, text)
    if strip_trailing:
        text = _TRAILING_WS.sub("", text)
        if at_end:  # only the turn's last line: elsewhere the spaces lead up to code on the line
            text = _TRAILING_WS_AT_END.sub("", text)
    return text


def normalize_text(
    text: str, *, form: str = "NFC", strip_trailing: bool = True, normalize_code: bool = False
) -> str:
    everything = _normalize_chunk(text, form, strip_trailing, at_end=True).strip("\n")
    if normalize_code or everything == text:
        # Most turns need no change at all: no need to find their code.
        return everything
    spans = segment(text, values=False)
    pieces: list[tuple[bool, str]] = []  # (is_code, text), neighbouring non-code spans merged
    for span in spans:
        is_code = span.kind == "code"
        if pieces and not is_code and not pieces[-1][0]:
            pieces[-1] = (False, pieces[-1][1] + span.text)
        else:
            pieces.append((is_code, span.text))
    out = [
        piece if is_code else _normalize_chunk(piece, form, strip_trailing, at_end=i == len(pieces) - 1)
        for i, (is_code, piece) in enumerate(pieces)
    ]
    # Blank lines go from the ends of the turn, but never a byte of code.
    if out and not pieces[0][0]:
        out[0] = out[0].lstrip("\n")
    if out and not pieces[-1][0]:
        out[-1] = out[-1].rstrip("\n")
    return "".join(out)


class Normalize(RowStage):
    name = "normalize"
    Config = NormalizeConfig

    def __init__(self, config: NormalizeConfig | None = None) -> None:
        super().__init__(config)
        if self.config.unicode_form not in ("NFC", "NFKC"):
            # NFD/NFKD split й into и + combining breve: never acceptable for Russian text.
            raise ValueError("unicode_form must be NFC or NFKC")

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        for batch in batches:
            turns = Turns.of(batch.column("messages")) if batch.num_rows else None
            if turns is None:
                yield from super().run(iter([batch]), ctx)
            else:
                yield self._normalize_turns(batch, turns, ctx)

    def _normalize_turns(self, batch: pa.Table, turns: Turns, ctx: StageContext) -> pa.Table:
        """``process`` over a whole batch: only the turns that may change are run through
        ``normalize_text``; the rest are looked at once by Arrow, and once for being blank."""
        cfg = self.config
        texts = turns.contents.to_pylist()
        may_change = pc.match_substring_regex(turns.contents, _MAY_CHANGE).to_numpy(zero_copy_only=False)
        # ASCII is in every Unicode form; other text is checked (a quick check, most of the time).
        not_ascii = np.flatnonzero(~pc.string_is_ascii(turns.contents).to_numpy(zero_copy_only=False))
        for i in not_ascii:
            if not may_change[i] and not unicodedata.is_normalized(cfg.unicode_form, texts[i]):
                may_change[i] = True
        changed = []
        for i in np.flatnonzero(may_change):
            text = normalize_text(
                texts[i],
                form=cfg.unicode_form,
                strip_trailing=cfg.strip_trailing_whitespace,
                normalize_code=cfg.normalize_code,
            )
            if text != texts[i]:
                texts[i] = text
                changed.append(i)
        blank = np.array([not text.strip() for text in texts], dtype=bool) if cfg.drop_empty_turns else None
        # Counters in the order process() would first count them, turn by turn.
        counts = {"turns_changed": (len(changed), changed[0] if changed else None)}
        if blank is not None:
            where = np.flatnonzero(blank)
            counts["empty_turns_removed"] = (len(where), int(where[0]) if len(where) else None)
        for key, (n, _) in sorted(
            ((k, v) for k, v in counts.items() if v[0]),
            key=lambda item: (item[1][1], item[0] != "turns_changed"),
        ):
            ctx.count(key, n)
        if not changed and (blank is None or not blank.any()):
            return batch
        contents = pa.array(texts, pa.string()) if changed else turns.contents
        turns = Turns(turns.counts, turns.roles, contents)
        if blank is not None and blank.any():
            turns = turns.keep(~blank)
        where = batch.schema.get_field_index("messages")
        return batch.set_column(where, batch.schema.field(where), turns.column())

    def process(self, row: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
        cfg = self.config
        turns = []
        for message in row["messages"]:
            content = normalize_text(
                message["content"],
                form=cfg.unicode_form,
                strip_trailing=cfg.strip_trailing_whitespace,
                normalize_code=cfg.normalize_code,
            )
            if content != message["content"]:
                ctx.count("turns_changed")
            if cfg.drop_empty_turns and not content.strip():
                ctx.count("empty_turns_removed")
                continue
            turns.append({"role": message["role"], "content": content})
        row["messages"] = turns
        return row

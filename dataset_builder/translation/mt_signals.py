"""How good a translated turn looks: its prose taken apart from its code, the cheap signals, and
the round trip's chrF.

The round trip (translate the translation back, compare with the original by sacrebleu's sentence
chrF, as NeMo Curator's ``TextQualityMetricStage`` does) cannot tell a good translation from none
at all: prose returned unchanged comes back unchanged and scores 100. The cheap signals can (the
share of the target script in the translated prose, the share of source sentences found unchanged
in it), so the two are read together.

Only prose is ever sent back: the translated turn is cut along the original's code spans (code is
byte-identical in a translation that passed the translate stage), and inline code in that prose
stays behind placeholders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from dataset_builder.translation.segment import Protected, protect, segment
from dataset_builder.translation.sentences import split_sentences

_PLACEHOLDER = re.compile("\u27e6\\d+\u27e7")
_CYRILLIC = re.compile(r"[\u0400-\u04FF]")
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class ProsePair:
    """One turn's prose: the original's and the translation's, inline code left out of both, and
    the translation's prose with inline code behind placeholders (what the round trip sends)."""

    source: list[str]
    translated: list[str]
    to_send: list[Protected]


def translated_pieces(source: str, translated: str) -> list[str] | None:
    """The translation of each run of the original's prose spans, found by walking the original's
    code spans through the translation in order; None when a code span is not there (comments
    translated, or not a translation of ``source``)."""
    out: list[str] = []
    pos, prose_open = 0, False
    for span in segment(source):
        if span.kind != "code":
            prose_open = True
            continue
        at = translated.find(span.text, pos)
        if at < 0 or (not prose_open and translated[pos:at].strip()):
            return None
        if prose_open:
            out.append(translated[pos:at])
        pos, prose_open = at + len(span.text), False
    if prose_open:
        out.append(translated[pos:])
    elif translated[pos:].strip():
        return None
    return out


def _prose_spans(text: str) -> list[str]:
    return [span.text for span in segment(text) if span.kind == "prose"]


def _without_code(protected: Protected) -> str:
    return _PLACEHOLDER.sub(" ", protected.text)


def prose_pair(source: str, translated: str) -> ProsePair:
    source_prose = [protect(p) for p in _prose_spans(source)]
    pieces = translated_pieces(source, translated)
    if pieces is None:
        # Code spans changed (translated comments): the translation's own prose spans.
        pieces = _prose_spans(translated)
    to_send = [protect(p) for p in pieces]
    return ProsePair(
        [_without_code(p) for p in source_prose if p.text.strip()],
        [_without_code(p) for p in to_send if p.text.strip()],
        [p for p in to_send if p.text.strip()],
    )


def sentences_to_send(pair: ProsePair, language: str) -> list[list[str]]:
    """Per piece of translated prose, its sentences (inline code behind placeholders)."""
    return [split_sentences(p.text, language)[0] for p in pair.to_send]


def back_translation(pair: ProsePair, language: str, done: dict[str, str]) -> str:
    """The back-translated prose of a turn from ``done`` (sentence -> translation), inline code
    left out, pieces joined as the original's are."""
    out = []
    for p in pair.to_send:
        sentences, gaps = split_sentences(p.text, language)
        parts = [gaps[0]]
        for sentence, gap in zip(sentences, gaps[1:], strict=True):
            parts += [done.get(sentence, ""), gap]
        out.append(_PLACEHOLDER.sub(" ", "".join(parts)))
    return "\n".join(out)


@lru_cache(maxsize=1)
def _chrf():  # -> sacrebleu.metrics.CHRF
    from sacrebleu.metrics import CHRF

    return CHRF()


def round_trip_chrf(original: str, back: str) -> float:
    """sacrebleu's sentence chrF (character 6-grams, beta 2) of the back-translation against the
    original, 0 to 100."""
    return round(float(_chrf().sentence_score(back, [original]).score), 4)


def length_ratio(source: str, translated: str) -> float | None:
    return round(len(translated) / len(source), 4) if source.strip() else None


def target_script_share(text: str) -> float | None:
    """Share of the letters that are Cyrillic; None without letters."""
    letters = sum(ch.isalpha() for ch in text)
    return round(len(_CYRILLIC.findall(text)) / letters, 4) if letters else None


def repetition(text: str, n: int = 3) -> float | None:
    """Share of the word ``n``-grams that repeat an earlier one (0: none repeats); None without
    words."""
    words = _WORD.findall(text.lower())
    if not words:
        return None
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return round((len(grams) - len(set(grams))) / len(grams), 4) if grams else 0.0


def untranslated_share(source_pieces: list[str], translated: str, language: str) -> float | None:
    """Share of the original's prose sentences (those with two letters or more) found unchanged in
    the translated prose; None when it has none."""
    sentences = [
        s
        for piece in source_pieces
        for s in split_sentences(piece, language)[0]
        if sum(map(str.isalpha, s)) >= 2
    ]
    if not sentences:
        return None
    flat = " ".join(translated.split())
    return round(sum(" ".join(s.split()) in flat for s in sentences) / len(sentences), 4)

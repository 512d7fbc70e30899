"""Sentence splitting with pysbd: rule-based, no model, nothing to download at run time."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=4)
def _segmenter(language: str):  # -> pysbd.Segmenter
    import pysbd

    return pysbd.Segmenter(language=language, clean=False, char_span=False)


def split_sentences(text: str, language: str = "en") -> tuple[list[str], list[str]]:
    """``(sentences, gaps)`` with ``gaps[0] + s0 + gaps[1] + s1 + ... + gaps[n]`` == ``text``."""
    if len(text) < 40 or not any(ch in text for ch in ".!?"):
        lead = text[: len(text) - len(text.lstrip())]
        trail = text[len(text.rstrip()) :]
        body = text.strip()
        return ([body], [lead, trail]) if body else ([], [text])
    pieces = _segmenter(language).segment(text)
    sentences, gaps = [], []
    pos = 0
    for piece in pieces:
        piece = piece.strip()
        if not piece:
            continue
        found = text.find(piece, pos)
        if found < 0:  # pysbd changed the text: keep the rest whole rather than lose any of it
            break
        gaps.append(text[pos:found])
        sentences.append(piece)
        pos = found + len(piece)
    rest = text[pos:]
    if rest.strip():
        lead = rest[: len(rest) - len(rest.lstrip())]
        gaps.append(lead)
        sentences.append(rest.strip())
        rest = rest[len(rest.rstrip()) :]
    gaps.append(rest)
    return sentences, gaps


def join_sentences(sentences: list[str], gaps: list[str]) -> str:
    out = [gaps[0]]
    for sentence, gap in zip(sentences, gaps[1:], strict=True):
        out.append(sentence)
        out.append(gap)
    return "".join(out)

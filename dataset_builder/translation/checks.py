"""Checks on a translated turn: code intact, language right, no degenerate output."""

from __future__ import annotations

import re

from dataset_builder.translation.langid import letter_shares

_WORD = re.compile(r"\w+", re.UNICODE)


def repetition_loop(text: str, n: int = 3, min_words: int = 24, max_share: float = 0.3) -> bool:
    """True when one word n-gram makes up more than ``max_share`` of all n-grams: the model is
    stuck in a loop ("и и и и", "the function the function the function")."""
    words = _WORD.findall(text.lower())
    if len(words) < min_words:
        return False
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    top = max(grams.count(g) for g in set(grams))
    return top / len(grams) > max_share


def latin_share(text: str) -> float:
    """Share of Latin letters among the letters of (code-free) prose."""
    letters, _, lat = letter_shares(text)
    return lat if letters else 0.0

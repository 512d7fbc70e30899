"""Language identification for routing and verification, on prose with code removed.

langdetect, seeded (it is random otherwise) and restricted to the languages that matter here.
Cyrillic text is where it errs (short Russian, or Russian with identifiers, comes back as
Bulgarian or Macedonian), so letters decide first: Ukrainian-only letters mean Ukrainian;
otherwise Cyrillic prose is Russian unless langdetect calls it Bulgarian/Macedonian/Ukrainian
and there is no Russian-only letter (ы, э, ё) to contradict it in a text long enough to judge.
"""

from __future__ import annotations

import re
from functools import lru_cache

from dataset_builder.translate.segment import code_fingerprint, segment

_CYRILLIC = re.compile(r"[\u0400-\u04FF]")
_LATIN = re.compile(r"[A-Za-z\u00C0-\u024F]")
_UKRAINIAN_ONLY = set("іїєґІЇЄҐ")
_RUSSIAN_ONLY = set("ыэёЫЭЁ")
MIN_LETTERS = 3


@lru_cache(maxsize=1)
def _factory():  # -> DetectorFactory
    from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    return factory


def _langdetect(text: str, languages: tuple[str, ...]) -> str | None:
    from langdetect.lang_detect_exception import LangDetectException

    detector = _factory().create()
    detector.set_prior_map({lang: 1.0 for lang in languages})
    detector.seed = 0
    detector.append(text)
    try:
        return detector.detect()
    except LangDetectException:
        return None


def letter_shares(text: str) -> tuple[int, float, float]:
    """(letters, Cyrillic share, Latin share)."""
    cyr = len(_CYRILLIC.findall(text))
    lat = len(_LATIN.findall(text))
    letters = cyr + lat
    return letters, (cyr / letters if letters else 0.0), (lat / letters if letters else 0.0)


def detect(text: str) -> str | None:
    """'ru', 'uk', 'bg', 'mk', 'en' or None (too little text to tell)."""
    letters, cyr, lat = letter_shares(text)
    if letters < MIN_LETTERS:
        return None
    if cyr < 0.5:
        return "en" if lat > 0.5 else None
    chars = set(text)
    if chars & _UKRAINIAN_ONLY:
        return "uk"
    if chars & _RUSSIAN_ONLY:
        return "ru"
    guess = _langdetect(text, ("ru", "uk", "bg", "mk"))
    if guess in ("bg", "mk", "uk") and letters >= 60:
        return guess
    return "ru"


def prose_only(text: str) -> str:
    """The prose of a turn, with code blocks and inline code removed."""
    parts = []
    for span in segment(text):
        if span.kind == "prose":
            prose = span.text
            for code in code_fingerprint(span.text):
                prose = prose.replace(code, " ")
            parts.append(prose)
    return "\n".join(parts)

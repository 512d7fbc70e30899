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

from dataset_builder.translation.segment import protect, segment

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
            for code in protect(span.text).spans:
                prose = prose.replace(code, " ")
            parts.append(prose)
    return "\n".join(parts)


# Latin-script languages langdetect knows: the default candidates for routing rows that are not in
# the declared source language (a German row must not be "translated from English").
LATIN_LANGUAGES = (
    "en", "de", "fr", "es", "it", "pt", "nl", "pl", "sv", "da", "no", "fi", "cs", "sk", "sl", "hr",
    "ro", "hu", "tr", "id", "vi", "ca", "lt", "lv", "et", "sq", "af", "tl", "sw", "so", "cy",
)  # fmt: skip


def _probabilities(text: str, languages: tuple[str, ...]) -> list[tuple[str, float]]:
    from langdetect.lang_detect_exception import LangDetectException

    detector = _factory().create()
    detector.set_prior_map({lang: 1.0 for lang in languages})
    detector.seed = 0
    detector.append(text)
    try:
        return [(p.lang, p.prob) for p in detector.get_probabilities()]
    except LangDetectException:
        return []


# Function words of the declared language that its neighbours do not share (English "in", "is",
# "of", "we", "will" are Dutch or German words too, so they are left out).
_FUNCTION_WORDS = {
    "en": frozenset(
        ["the", "and", "that", "with", "this", "which", "you", "your", "should", "from", "what", "how",
         "are", "would", "could", "these", "those", "there", "their", "using", "given", "write", "returns"]
    ),
}  # fmt: skip


def _function_word_share(text: str, lang: str) -> float:
    words = re.findall(r"[^\W\d_]+", text.lower())
    vocabulary = _FUNCTION_WORDS.get(lang)
    if not words or vocabulary is None:
        return 0.0
    return sum(w in vocabulary for w in words) / len(words)


def identify(
    text: str,
    candidates: tuple[str, ...],
    default: str,
    *,
    min_letters: int = 20,
    min_probability: float = 0.9,
) -> tuple[str, float]:
    """``(language, probability)`` of a row's prose among ``candidates``.

    Cyrillic text goes through :func:`detect`. Latin text shorter than ``min_letters`` letters, or
    whose best guess is below ``min_probability``, is taken to be in ``default`` (the language the
    source declares): langdetect is unreliable on a few words, and a wrong "other language" call
    would drop a good row."""
    letters, cyr, lat = letter_shares(text)
    if cyr >= 0.5:
        found = detect(text)
        return (found or default), 1.0
    if lat <= 0.5 or letters < min_letters:
        return default, 0.0
    if _function_word_share(text, default) >= 0.1:
        # A second, independent signal, and a cheap one, so it goes first: text a tenth of whose
        # words are the default language's own function words is in that language ("Implement a
        # queue in C. Include the enqueue and dequeue methods." is English, though langdetect says
        # French with p = 0.99999).
        return default, 1.0
    # A couple of thousand characters say as much as the whole text, at a fraction of the time.
    ranked = _probabilities(text[:2000], tuple(dict.fromkeys((*candidates, default))))
    if ranked and ranked[0][1] >= min_probability:
        return ranked[0]
    return default, (ranked[0][1] if ranked else 0.0)

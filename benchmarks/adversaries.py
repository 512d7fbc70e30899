"""Adversarial translators for the code-safety benchmark, plugged in as a recipe's
``engine = "python:adversaries.py:NAME"``.

Each one does to every text it is sent what a bad model might do to code that reached it: the
translate stage must keep code away from it, or notice and reject the row. They change only what
they are sent, answer one text per text, and are deterministic, like a real engine must be.
"""

from __future__ import annotations

import re

TRANSLATOR_VERSION = "1"

_CYRILLIC = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "абцдефгхийклмнопкрстуввкызАБЦДЕФГХИЙКЛМНОПКРСТУВВКЫЗ",
)
_DIGITS = ["ноль", "один", "два", "три", "четыре", "пять", "шесть", "семь", "восемь", "девять"]
# Words a literal-minded model translates even inside code.
_KEYWORDS = {
    "return": "вернуть", "print": "печать", "if": "если", "else": "иначе", "for": "для",
    "while": "пока", "function": "функция", "def": "опр", "class": "класс", "import": "импорт",
    "true": "истина", "false": "ложь", "True": "Истина", "False": "Ложь", "null": "нуль",
    "int": "цел", "string": "строка", "String": "Строка", "public": "публичный", "static": "статический",
    "void": "пусто", "const": "конст", "let": "пусть", "var": "перем", "echo": "эхо", "in": "в",
    "SELECT": "ВЫБРАТЬ", "FROM": "ИЗ", "WHERE": "ГДЕ", "name": "имя", "value": "значение",
    "list": "список", "file": "файл", "result": "результат", "main": "главная", "new": "новый",
}  # fmt: skip
_WORD = re.compile(r"[A-Za-z]+")
_TRAILING_PUNCTUATION = re.compile(r"[\s.,;:!?)\]}'\"]+$")


def identity(texts: list[str], from_lang: str, to_lang: str) -> list[str]:
    """Every text returned as it came: whatever changes in a published row, the stage changed."""
    return list(texts)


def transliterate(texts: list[str], from_lang: str, to_lang: str) -> list[str]:
    """Every Latin letter becomes a Cyrillic one."""
    return [text.translate(_CYRILLIC) for text in texts]


def upper(texts: list[str], from_lang: str, to_lang: str) -> list[str]:
    """Every word upper-cased."""
    return [_WORD.sub(lambda m: m.group(0).upper(), text) for text in texts]


def drop_punctuation(texts: list[str], from_lang: str, to_lang: str) -> list[str]:
    """Trailing punctuation (and closing brackets and quotes) dropped."""
    return [_TRAILING_PUNCTUATION.sub("", text) for text in texts]


def curly_quotes(texts: list[str], from_lang: str, to_lang: str) -> list[str]:
    """Straight quotes turned into typographic ones, as a model trained on edited text writes."""

    def curl(text: str) -> str:
        text = re.sub(r'"([^"]*)"', "\u201c\\1\u201d", text)
        text = re.sub(r"(?<!\w)'([^']*)'", "\u2018\\1\u2019", text)
        return text.replace("'", "\u2019").replace('"', "\u201d")

    return [curl(text) for text in texts]


def reorder(texts: list[str], from_lang: str, to_lang: str) -> list[str]:
    """Words in reverse order (Russian word order differs; a model moves words around)."""
    return [" ".join(reversed(text.split())) if len(text.split()) > 1 else text for text in texts]


def drop_token(texts: list[str], from_lang: str, to_lang: str) -> list[str]:
    """The second whitespace-separated token left out (a model skips a word it cannot place)."""

    def drop(text: str) -> str:
        parts = re.split(r"(\s+)", text)
        tokens = [i for i, part in enumerate(parts) if part and not part.isspace()]
        if len(tokens) < 2:
            return text
        del parts[tokens[1] : tokens[1] + 2]
        return "".join(parts)

    return [drop(text) for text in texts]


def digits(texts: list[str], from_lang: str, to_lang: str) -> list[str]:
    """Every digit spelled out as a Russian word."""
    return [re.sub(r"\d", lambda m: _DIGITS[int(m.group(0))], text) for text in texts]


def keywords(texts: list[str], from_lang: str, to_lang: str) -> list[str]:
    """Only the words of programming languages translated (``return`` -> ``вернуть``), the rest
    kept: the output still looks like the input, so nothing but the code check can catch it."""
    return [_WORD.sub(lambda m: _KEYWORDS.get(m.group(0), m.group(0)), text) for text in texts]


ADVERSARIES = {
    "identity": identity,
    "transliterate": transliterate,
    "upper": upper,
    "drop-punctuation": drop_punctuation,
    "curly-quotes": curly_quotes,
    "reorder": reorder,
    "drop-token": drop_token,
    "digits": digits,
    "keywords": keywords,
}

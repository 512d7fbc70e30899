"""Prove that a translation left the code alone, by a principle the segmenter does not use.

The translate stage decides what to send to the model with :mod:`~dataset_builder.translation.segment`,
which judges each line by its shape (keywords, statement ends, how much of it reads as prose).
This module imports nothing from it and judges differently: it **lexes** the turn and asks of
every token whether it is a natural-language word of a sentence. Only those may change; every
other token must come through. Step by step:

1. **Lines.** Translation keeps the line structure, so line *i* faces line *i*.
2. **Structure the lexer sees across lines**: fenced blocks; ``/* ... */`` block comments and
   their `` * `` lines; triple-quoted strings (docstrings, parsed or not); program output after
   an output header, REPL/shell sessions, patches and stack traces. Lines inside these are code:
   they do not change (a comment or docstring may, with ``translate_comments``, behind its
   unchanged marker).
3. **Python as a whole** (the turn, or a fenced Python block that parses): the same ``ast.dump``.
4. **Chunks.** Every other line is cut at whitespace. A chunk is a *word* when, without its
   sentence punctuation, it is letters alone (an inner ``'`` or ``-`` allowed) in lower case or
   with one leading capital. Anything else is *code-bearing*: operators and brackets
   (``x++``, ``i<nums.length``, ``<html>``, ``std::map``, ``Map<Character,``), inner dots,
   underscores, digits among letters, inner capitals, ALL CAPS, a glued ``#``, quoted literals.
   A trailing ``//``, ``#`` or ``--`` comment after code is lexed off first: the code before it
   is a code line, the comment its comment.
5. **Sentences.** A line is prose when its words are at least 60% of its chunks and it reads
   as a sentence by its *function words* (``the``, ``is``, ``you``, ``should`` ...: words code
   does not use), by a capital start with three words, or by a sentence end after a word. A
   line with no code-bearing chunk and at least one word is prose too (titles, list items,
   recipes, addresses, poems), unless it is a lower-case SQL statement or a ``key: value``
   mapping, or a short line between code lines (``end``, ``done``).
6. **What may change.** In a prose line, words may change and move; its code-bearing chunks must
   all come through (as a multiset: translation reorders sentences), and on a *label* line
   (``State: Texas``) a value that the row's code uses (``'Texas'`` in the query) too. Every
   other line must come through byte for byte, except comment text under ``translate_comments``.

Differences are reported with the line and the rule that caught them.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

# ---- chunks --------------------------------------------------------------------------------------

_LEAD = "([\"'«“‘*_"
_TRAIL = ")]\"'»”’.,;:!?*_"
_WORD_CORE = re.compile(r"[A-Za-zÀ-ÿ][a-zà-ÿ]*(?:['’\-][A-Za-zÀ-ÿ]+)*")
_ABBREVIATION = re.compile(r"(?:[A-Za-z]\.){1,3}[A-Za-z]?")  # e.g, i.e, U.S
_CODE_CHAR = set("=<>{}[]|&^~$@\\;`+%")
# English words that code does not use: their presence makes a run of words a sentence.
_FUNCTION_WORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "this",
        "that",
        "these",
        "those",
        "it",
        "its",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "of",
        "to",
        "you",
        "your",
        "we",
        "our",
        "they",
        "their",
        "them",
        "he",
        "she",
        "his",
        "her",
        "i",
        "my",
        "me",
        "should",
        "would",
        "could",
        "will",
        "can",
        "may",
        "might",
        "must",
        "has",
        "have",
        "had",
        "does",
        "did",
        "please",
        "which",
        "who",
        "whom",
        "whose",
        "how",
        "what",
        "why",
        "there",
        "here",
        "than",
        "then",
        "into",
        "onto",
        "about",
        "also",
        "only",
        "just",
        "very",
        "each",
        "every",
        "some",
        "any",
        "all",
        "both",
        "such",
        "our",
        "us",
    ]
)


def _core(chunk: str) -> str:
    return chunk.lstrip(_LEAD).rstrip(_TRAIL)


def chunk_kind(chunk: str) -> str:
    """'word', 'letter' (a single letter), 'neutral' (numbers, dashes, blanks like ``___``,
    list marks) or 'code'."""
    core = _core(chunk)
    if not core:
        return "neutral"
    if _WORD_CORE.fullmatch(core):
        return "letter" if len(core) == 1 else "word"
    if re.fullmatch(r"[-+]?\d+(?:[.,:]\d+)*%?|[-–—/]+|_+|\d{1,3}[.)]|#{1,6}|>+", core):
        return "neutral"
    if _ABBREVIATION.fullmatch(core):
        return "word"
    if re.fullmatch(r"\S+['’]s", core):
        return chunk_kind(core[:-2])  # a possessive: "JavaScript's" is JavaScript
    if "-" in core.strip("-") and not core.startswith("-"):
        # "12-hour", "well-known": a compound is code only when one of its parts is
        parts = [chunk_kind(p) for p in core.split("-") if p]
        return "code" if "code" in parts else "word"
    if re.fullmatch(r"[A-Za-z]+(?:/[A-Za-z]+)+", core) and not core.isupper():
        return "word"  # "and/or", "input/output"
    return "code"


def _chunks(text: str) -> list[tuple[str, str]]:
    return [(c, chunk_kind(c)) for c in text.split()]


# An apostrophe between letters does not close a single-quoted literal ('Don't stop').
_QUOTED_LITERAL = re.compile(r"""(?<![\w'"`])("[^"\n]+"|'(?:[^'\n]|\b'\b)+'|`[^`\n]+`)(?![\w'"`])""")


def code_tokens(line: str) -> list[str]:
    """What must come through a translated prose line: its code-bearing chunks and its short
    quoted literals, in order; chunks that belong together (see :func:`_code_runs`) as one."""
    found: list[tuple[int, str]] = []
    taken = bytearray(len(line))
    # Inline code in a run of backticks (``{'x': 1}``) and a quotation holding quoted code
    # ('with open(f, 'w') as out'): one token each, whatever is inside.
    for start, end in [*_backtick_runs(line), *_nested_quotations(line)]:
        if not any(taken[start:end]):
            found.append((start, line[start:end]))
            taken[start:end] = b"\x01" * (end - start)
    # A bracketed sequence with a number or a quote in it (`[2, 4]`), and an error message quoted
    # whole, inner quotes and all (`'TypeError: 'NoneType' object is not iterable'`): one token each.
    for m in re.finditer(r"\[[^\[\]\n]*[\d'\"][^\[\]\n]*\]|(['\"])\w+(?:Error|Exception|Warning):.*\1", line):
        if any(taken[m.start() : m.end()]):
            continue
        found.append((m.start(), m.group(0)))
        taken[m.start() : m.end()] = b"\x01" * (m.end() - m.start())
    # String delimiters named in a sentence ("use ''' or \"\"\""): what a reader types.
    for m in re.finditer(r"""(?<![\w'"`])(?:'''|\"\"\")(?![\w'"`])""", line):
        if any(taken[m.start() : m.end()]):
            continue
        found.append((m.start(), m.group(0)))
        taken[m.start() : m.end()] = b"\x01" * (m.end() - m.start())
    for start, end in _code_runs(line):
        if not any(taken[start:end]):
            found.append((start, line[start:end]))
            taken[start:end] = b"\x01" * (end - start)
    for m in _QUOTED_LITERAL.finditer(line):
        if any(taken[m.start() : m.end()]):
            continue
        inner = m.group(0)[1:-1]
        # A quotation is a sentence only when it has words: one quoted token is a literal.
        if len(m.group(0)) <= 82 or _holds_code(inner) or len(inner.split()) == 1:
            found.append((m.start(), m.group(0)))
            taken[m.start() : m.end()] = b"\x01" * (m.end() - m.start())
    for m in re.finditer(r"\S+", line):
        if any(taken[m.start() : m.end()]) or chunk_kind(m.group(0)) != "code":
            continue
        core = m.group(0).lstrip(_LEAD)
        start = m.start() + len(m.group(0)) - len(core)
        core = re.sub(r"['’]s$", "", core.rstrip(".,:!?"))
        while core and _unpaired(core, -1) and core[-1] in ")]}":
            core = core[:-1].rstrip(".,:!?")  # "(GCD)." closes a remark, not code: "GCD"
        if "-" in core.strip("-") and not core.startswith("-"):
            # only the code parts of a compound ("URL" of "URL-friendly") must stay as they are
            found.extend((start, p) for p in core.split("-") if p and chunk_kind(p) == "code")
        else:
            found.append((start, core))
    return [tok for _, tok in sorted(found)]


def _backtick_runs(line: str) -> list[tuple[int, int]]:
    """Spans opened by two or more backticks and closed by as many."""
    spans, i = [], 0
    while (i := line.find("``", i)) >= 0:
        width = len(line[i:]) - len(line[i:].lstrip("`"))
        end = line.find("`" * width, i + width)
        while end >= 0 and line[end + width : end + width + 1] == "`":
            end = line.find("`" * width, end + 1)
        if end < 0:
            break
        spans.append((i, end + width))
        i = end + width
    return spans


def _nested_quotations(line: str) -> list[tuple[int, int]]:
    """Quotations that hold quotes of their own kind and code ("'with open(f, 'w') as out'"):
    read from a quote after a space to the first quote of its kind that ends a word with the
    quotes between paired and the brackets closed."""
    spans: list[tuple[int, int]] = []
    for m in re.finditer(r"(?:^|(?<=[\s(]))(['\"])(?=\S)", line):
        quote, start = m.group(1), m.start()
        if spans and start < spans[-1][1]:
            continue
        # a quotation is a phrase, not a paragraph: looking further makes a line of quotes quadratic
        for end in range(start + 2, min(len(line), start + 400)):
            if line[end] != quote or (end + 1 < len(line) and line[end + 1] not in " \t.,;:!?)"):
                continue
            inner = line[start + 1 : end]
            if inner.count(quote) % 2 or any(inner.count(a) != inner.count(b) for a, b in ("()", "[]", "{}")):
                continue
            if quote in inner and re.search(r"\w\(|=", inner):
                spans.append((start, end + 1))
            break
    return spans


def _holds_code(text: str) -> bool:
    """A long quotation is a sentence unless a chunk of it is code (a quoted shell command)."""
    return any(k == "code" for _, k in _chunks(text))


# Operators as chunks of their own, and which of them bind words as well as names and numbers.
_OPERATOR = re.compile(r"[=<>!&|+*%]{1,3}|[-+*/%]=|->|=>")
_COMPARISON = re.compile(r"[=!]==?|<=|>=|&&|\|\||[-+*/%]=|->|=>|<<|>>")
_OPENERS, _CLOSERS = "([{<", ")]}>"


def _depth(chunk: str) -> int:
    """Brackets a chunk leaves open, quoted characters aside. A ``(`` opens only glued to a name
    (a call: ``log(a,``; not a remark's ``(see``); an ``<`` only after a type's name (``Map<K,``)
    or as a tag (``<iostream>``), never as a comparison (``i<n``); a ``>`` closes unless it is an
    arrow or a comparison."""
    chunk = re.sub(r"'[^']*'|\"[^\"]*\"", "", chunk)
    opened = len(re.findall(r"\w\(|[\[{]|(?:\b[A-Z]\w*|::\w*|^)<(?=\w)", chunk))
    return opened - len(re.findall(r"[)\]}]|(?<![-=\s])>(?!=)", chunk))


_PAIRS = {"(": ")", "[": "]", "{": "}", ")": "(", "]": "[", "}": "{"}


def _unpaired(text: str, at: int) -> bool:
    """Is the bracket or quote at the edge ``at`` of ``text`` one that the text does not close?"""
    mark = text[at]
    if mark in "\"'":
        return text.count(mark) % 2 == 1
    return mark in _PAIRS and text.count(mark) > text.count(_PAIRS[mark])


def _adjacent_code(left: str, right: str) -> bool:
    """Two code chunks side by side are one piece (``#include <iostream>``) unless a sentence
    mark, a quote or a bracket of prose stands between them (``table2's 'id'``, ``NPM (Node.js``)."""
    return not (re.search(r"[.,;:!?'\"]$", left) or right[:1] in "(\"'" or "'" in left or "'" in right)


def _opens_a_value(chunks: list[tuple[int, int, str]], k: int) -> bool:
    """A ``[`` or ``{`` opened in prose and closed within a few chunks, with no three words in a
    row inside: a list or an object (``[a, b, c]``), not a bracketed remark."""
    if not re.match(r"[\[{]", chunks[k][2]):
        return False
    depth, words = 0, 0
    for _, _, chunk in chunks[k : k + 13]:
        depth += _depth(chunk)
        words = words + 1 if chunk_kind(chunk.strip("[]{}")) == "word" else 0
        if words >= 3:
            return False
        if depth <= 0:
            return True
    return False


def _code_runs(line: str) -> list[tuple[int, int]]:
    """Character ranges of code that spans several chunks of a line: a chunk that opens a bracket
    runs to the chunk that closes it (``[a, b, c]``, ``Map<Character, Integer>``,
    ``console.log(a, b)``); an operator chunk takes its operands (``i <= n``, ``x > 5``); code
    chunks with only spaces between them (``#include <iostream>``) go together. A run must come
    through whole, spaces included: a model may not move its parts apart."""
    chunks = [(m.start(), m.end(), m.group(0)) for m in re.finditer(r"\S+", line)]
    member = [chunk_kind(c) == "code" for _, _, c in chunks]
    bound = [False] * len(chunks)
    for k, (_, _, c) in enumerate(chunks):
        if not _OPERATOR.fullmatch(c):
            continue
        strong = bool(_COMPARISON.fullmatch(c))
        for j in (k - 1, k + 1):
            if 0 <= j < len(chunks):
                kind = chunk_kind(chunks[j][2])
                number = kind == "neutral" and any(ch.isdigit() for ch in chunks[j][2])
                if kind in ("code", "letter") or number or (strong and kind == "word"):
                    member[j] = bound[j] = member[k] = bound[k] = True
    runs: list[tuple[int, int]] = []
    k = 0
    while k < len(chunks):
        if not member[k] and not _opens_a_value(chunks, k):
            k += 1
            continue
        # Only brackets that code opens carry the run on ("f(a," but not the "(" of a remark).
        brackets = chunk_kind(chunks[k][2]) == "code" or _opens_a_value(chunks, k)
        first, depth, j = k, _depth(chunks[k][2]) if brackets else 0, k
        while j + 1 < len(chunks) and j - first < 12:
            nxt = chunks[j + 1][2]
            joins = depth > 0 or (
                member[j + 1] and (bound[j] or bound[j + 1] or _adjacent_code(chunks[j][2], nxt))
            )
            if not joins:
                break
            j += 1
            depth += _depth(nxt) if brackets else 0
        if j > first:
            start, end = chunks[first][0], chunks[j][1]
            text = line[start:end]
            if depth <= 0:
                text = text.rstrip(".,;:!?")
            # sentence marks around the run ("(x > 5" of "(x > 5 here)") are not its code
            while text and _unpaired(text, 0):
                text, start = text[1:], start + 1
            while text and _unpaired(text, -1):
                text = text[:-1]
            runs.append((start, start + len(text)))
        k = j + 1
    return [(a, b) for a, b in runs if b > a]


def _is_sentence(words: list[str], body: str, last_kind: str) -> bool:
    lowered = [_core(w).lower() for w in words]
    long_words = [w for w in lowered if len(w) > 1]
    # "a" and "I" are function words only among real words: "return a + b" is no sentence.
    if any(w in _FUNCTION_WORDS for w in long_words) or (
        len(long_words) >= 3 and ("a" in lowered or "i" in lowered)
    ):
        return True
    lead = body.lstrip(_LEAD + "-+>#0123456789.) ")[:1]
    if lead.isupper() and len(words) >= 3:
        return True
    return len(words) >= 2 and last_kind == "word" and body.rstrip()[-1:] in ".!?"


@lru_cache(maxsize=1 << 16)
def reads_as_sentence(line: str) -> bool:
    """A sentence, with or without code in it: words are at least 60% of the chunks and the
    words read as a sentence (see the module's rule 5)."""
    # A quoted literal is one code-bearing chunk: `echo "The number is even"` is no sentence.
    # Code the author marked with backticks is set aside: the words around it are the sentence.
    chunks = _chunks(_QUOTED_LITERAL.sub(lambda m: " — " if m.group(0)[0] == "`" else " `q` ", line))
    if not any(k == "word" for _, k in chunks):
        return False
    # Single letters in a line with words are words ("a", "I", "x").
    counted = [(c, "word" if k == "letter" else k) for c, k in chunks if k != "neutral"]
    words = [c for c, k in counted if k == "word"]
    if len(words) < 0.5 * len(counted):
        return False
    return _is_sentence(words, line, counted[-1][1])


def is_bare_value(text: str) -> bool:
    """A turn that is only values, one bare token a line (``True``, ``False``, ``average``): an
    answer that names a value, not a sentence to translate."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    return bool(lines) and all(len(line.split()) == 1 and line[-1] not in ".!?" for line in lines)


# Kept for the benchmark's kinds of code: a prose line in the verifier's sense.
def clearly_prose(line: str) -> bool:
    return line_is_prose(line)


_SQL_STATEMENT = re.compile(
    r"(?i)^\s*(?:select\s+\S.*\bfrom\s+\w|insert\s+into\s+\w|update\s+\w+\s+set\s|delete\s+from\s+\w|"
    r"create\s+(?:table|index|view|database)\s+\w|alter\s+table\s+\w|drop\s+(?:table|index|view)\s+\w)"
)
_SQL_CLAUSE = re.compile(
    r"(?i)^\s*(?:from|where|group\s+by|order\s+by|having|limit|(?:left|right|inner|outer)?\s*join)\s+\w"
)
_MAPPING = re.compile(r"^\s*(?:-\s+)?[a-z_][\w.-]*:(?:\s|$)")
_ARTICLES = re.compile(r"(?i)\b(?:the|an?|your|this|these|those)\b")


@lru_cache(maxsize=1 << 16)
def line_is_prose(line: str) -> bool:
    """May the words of this line be translated? (The module's rule 5, without neighbours.)"""
    body = line.strip()
    if not body:
        return False
    chunks = _chunks(body)
    kinds = [k for _, k in chunks]
    if "word" not in kinds:
        return False  # "A", "B", "x = 1", "42": nothing to translate
    if (_SQL_STATEMENT.match(body) or _SQL_CLAUSE.match(body)) and not _ARTICLES.search(body):
        return False
    if _MAPPING.match(line) and not body[:1].isupper():
        return False  # "name: my build job", "  - uses: actions/checkout@v3"
    if _whole_literal(body):
        return False
    if re.search(r"[;{}]\s*$", body):
        return False  # a statement end: code, whatever words it has
    if is_output_header(body):
        return True  # "data.csv contents:" is a label
    if "code" not in kinds and not _QUOTED_LITERAL.search(body):
        return True
    return reads_as_sentence(body)


def _whole_literal(body: str) -> bool:
    """A line that is one quoted literal (a trailing comma or semicolon allowed): data."""
    m = re.fullmatch(r"""(["'`])(.*)\1\s*[,;]?""", body)
    return bool(m) and m.group(1) not in m.group(2)


# ---- lexing across lines -------------------------------------------------------------------------


def fenced_lines(lines: list[str]) -> list[tuple[int, int, str]]:
    """``(first, last, info)`` line indexes of fenced blocks, fences included."""
    blocks = []
    i = 0
    while i < len(lines):
        stripped = lines[i].lstrip(" ")
        indent = len(lines[i]) - len(stripped)
        marker = stripped[:3]
        if indent <= 3 and marker in ("```", "~~~"):
            char = marker[0]
            width = len(stripped) - len(stripped.lstrip(char))
            info = stripped[width:].strip().lower()
            j = i + 1
            while j < len(lines):
                closing = lines[j].strip()
                if closing and set(closing) == {char} and len(closing) >= width:
                    break
                j += 1
            blocks.append((i, min(j, len(lines) - 1), info))
            i = j + 1
            continue
        i += 1
    return blocks


@dataclass(frozen=True)
class LineRole:
    """How a source line may change: 'prose' (its words), 'code' (nothing, except the comment
    text after ``keep`` characters when comments may be translated), 'comment' (the same, for a
    line that is all comment or docstring)."""

    role: str
    why: str
    keep: int = -1  # characters that stay put when the rest is comment text; -1: no comment


def _trailing_comment(line: str) -> int:
    """Where a ``//``, ``#`` or `` -- `` comment after code starts (its marker), or -1. Code
    before it must carry code: ``Use // for division`` has no comment."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == "\\":
                continue
            if ch == quote:
                quote = None
            continue
        if ch in "\"'`" and (i == 0 or not line[i - 1].isalnum()):
            quote = ch
            continue
        marker = None
        if line.startswith("//", i) and (i == 0 or line[i - 1] != ":"):
            marker = "//"
        elif ch == "#" and (i == 0 or line[i - 1] in " \t") and line[i + 1 : i + 2] in (" ", ""):
            marker = "#"
        elif line.startswith(" -- ", i - 1 if i else 0) and line.startswith("--", i):
            marker = "--"
        if marker and i > 0:
            before = line[:i].strip()
            if before and (
                re.search(r"[;{})\]]$|\+\+$|--$", before) or any(k == "code" for _, k in _chunks(before))
            ):
                return i
    return -1


_BLOCK_OPEN = re.compile(r"/\*")
_BLOCK_CLOSE = re.compile(r"\*/")
_LINE_COMMENT = re.compile(r"^(\s*(?://+|<!--|/\*+|\*+(?!\*)|#+|--)\s?)")


def _triple_quotes(line: str) -> int:
    return len(re.findall(r'"""|\'\'\'', line))


def line_roles(lines: list[str]) -> list[LineRole | None]:
    """The role of each line the lexer can decide from structure alone (None: judge the line)."""
    roles: list[LineRole | None] = [None] * len(lines)
    fences = fenced_lines(lines)
    for first, last, _ in fences:
        for k in range(first, last + 1):
            roles[k] = LineRole("code", "fenced code")
    for k, what in verbatim_lines(lines).items():
        if roles[k] is None:
            roles[k] = LineRole("code", what)
    in_block = False  # inside /* ... */
    in_string = False  # inside a triple-quoted string
    for i, line in enumerate(lines):
        if roles[i] is not None:
            in_block = in_string = False
            continue
        stripped = line.strip()
        if in_block:
            roles[i] = LineRole("comment", "block comment", _comment_keep(line))
            if _BLOCK_CLOSE.search(line):
                in_block = False
            continue
        if in_string:
            roles[i] = LineRole("comment", "docstring", len(line) - len(line.lstrip()))
            if _triple_quotes(line) % 2:
                in_string = False
            continue
        if stripped.startswith("/*"):
            roles[i] = LineRole("comment", "block comment", _comment_keep(line))
            in_block = not _BLOCK_CLOSE.search(stripped[2:])
            continue
        if stripped.startswith(('"""', "'''", 'r"""', "r'''")):
            count = _triple_quotes(line)
            lead = len(line) - len(line.lstrip()) + (4 if stripped[0] == "r" else 3)
            roles[i] = LineRole("comment", "docstring", lead)
            in_string = count % 2 == 1
            continue
        if _triple_quotes(line) % 2 and re.search(r"=\s*[rbuf]?(?:\"\"\"|''')|\(\s*(?:\"\"\"|''')", line):
            roles[i] = LineRole("code", "string literal")
            in_string = True
            continue
        if stripped.startswith(("//", "<!--")):
            roles[i] = LineRole("comment", "comment line", _comment_keep(line))
    return roles


def _comment_keep(line: str) -> int:
    m = _LINE_COMMENT.match(line)
    return len(m.group(1)) if m else len(line) - len(line.lstrip())


def _judge_lines(lines: list[str], roles: list[LineRole | None]) -> list[LineRole]:
    """Roles for the lines structure left open: a trailing comment after code, a ``#`` or ``--``
    comment line among code, a prose line, a code line, or a short line between code lines."""
    judged: list[LineRole | None] = list(roles)
    for i, line in enumerate(lines):
        if judged[i] is not None or not line.strip():
            continue
        cut = _trailing_comment(line)
        if cut >= 0:
            marker = 2 if line.startswith(("//", "--"), cut) else 1
            keep = cut + marker + (1 if line[cut + marker : cut + marker + 1] == " " else 0)
            judged[i] = LineRole("code", "code with a trailing comment", keep)
        elif _printed_error(line):
            judged[i] = LineRole("code", "error message as printed")
        elif (cut := _code_then_prose(line)) > 0:
            remark = line[cut:].strip().rstrip(".,;")
            if remark.startswith("(") and remark.endswith(")"):
                # "int y = x * 2; (y is twice x)": the program's line, shown with its remark
                judged[i] = LineRole("code", "statement with a remark in brackets")
            else:
                judged[i] = LineRole("code", "statement before a sentence", cut)
        elif line_is_prose(line):
            if _short_phrase(line):
                judged[i] = LineRole("code", "short phrase, not a sentence")
            elif _label_and_value(line):
                judged[i] = LineRole("code", "a label and its value")
            elif (cut := _prose_then_code(line)) > 0:
                judged[i] = LineRole("prose", "prose then code", cut)
            else:
                judged[i] = LineRole("prose", "prose")
        elif (cut := _prose_then_code(line)) > 0:
            judged[i] = LineRole("prose", "prose then code", cut)
        elif _continues_sentence(lines, judged, i):
            judged[i] = LineRole("prose", "prose")  # the sentence of the line above goes on
        else:
            judged[i] = LineRole("code", _why_code(line))
    # A fenced block speaks for itself: it does not make the lines around it code.
    codeish = [r is not None and r.role in ("code", "comment") and r.why != "fenced code" for r in judged]
    inside_blocks = _lines_inside_blocks(lines, judged, codeish)
    # Short or indented lines that are no sentence (`exit 1`, `fi`) take their side from the
    # nearest lines that are not such lines themselves, so a run of them goes with its block.
    undecided = [
        r is not None
        and r.role == "prose"
        and not reads_as_sentence(ln.strip())
        and (len(ln.split()) <= 2 or ln[:1] in (" ", "\t"))
        for ln, r in zip(lines, judged, strict=True)
    ]
    out: list[LineRole] = []
    for i, line in enumerate(lines):
        role = judged[i]
        if role is None:
            out.append(LineRole("blank", "blank line"))
            continue
        if role.role == "prose":
            up, down = (
                _neighbour(lines, codeish, i, -1, undecided),
                _neighbour(lines, codeish, i, 1, undecided),
            )
            near_code = up is not False and down is not False and (up or down)
            stripped = line.strip()
            if is_output_header(stripped):
                pass  # "Output:", "data.csv contents:" between blocks: a label
            elif near_code and stripped.startswith(("#", "--")) and not stripped.startswith("##"):
                role = LineRole("comment", "comment line among code", _comment_keep(line))
            elif (
                near_code
                and not reads_as_sentence(stripped)
                and (len(stripped.split()) <= 2 or line[:1] in (" ", "\t"))
            ):
                role = LineRole("code", "short or indented line between code lines")
            elif i in inside_blocks:
                role = LineRole("code", "line inside an indented block")
        out.append(role)
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _lines_inside_blocks(lines: list[str], roles: list[LineRole | None], codeish: list[bool]) -> set[int]:
    """Indented lines in runs of such lines held tight between two code lines, each at least as
    deep as the shallower of those two: inside their block (an element's text in HTML, a statement
    of BASIC, a step of pseudocode), sentence or not. One pass over the turn."""

    def in_run(k: int) -> bool:
        return bool(lines[k].strip()) and _indent(lines[k]) > 0 and not codeish[k] and roles[k] is not None

    inside: set[int] = set()
    k = 0
    while k < len(lines):
        if not in_run(k):
            k += 1
            continue
        first = k
        while k < len(lines) and in_run(k):
            k += 1
        up, down = first - 1, k  # the run is lines first .. k - 1
        if (
            up >= 0
            and down < len(lines)
            and lines[up].strip()
            and lines[down].strip()
            and codeish[up]
            and codeish[down]
            and all(
                _indent(lines[m]) >= min(_indent(lines[up]), _indent(lines[down])) for m in range(first, k)
            )
        ):
            inside.update(range(first, k))
    return inside


def _neighbour(
    lines: list[str], codeish: list[bool], i: int, step: int, skip: list[bool] | None = None
) -> bool | None:
    j = i + step
    while 0 <= j < len(lines):
        if skip is not None and not lines[j].strip():
            return None  # the paragraph ends: its edge goes with the other side
        if lines[j].strip() and not (skip and skip[j]):
            return codeish[j]
        j += step
    return None


def _has_function_word(chunks: list[str]) -> bool:
    return any(_core(c).lower() in _FUNCTION_WORDS for c in chunks)


def _short_phrase(line: str) -> bool:
    """At most two chunks (three from a lower-case start), no list or heading mark before them, no
    sentence end or colon after (``Hello World``, ``Abstract Factory``): a value, a name or a
    printed line, which a translator has no sentence to work with."""
    chunks = line.split()
    return (
        (
            0 < len(chunks) <= 2
            or (len(chunks) == 3 and chunks[0][:1].islower() and not _has_function_word(chunks))
        )
        and chunk_kind(chunks[0]) != "neutral"
        and not chunks[0].startswith(("-", "*", "+", "#", ">"))
        and chunks[-1][-1] not in ".!?:"
    )


def _label_and_value(line: str) -> bool:
    """Chunks up to one that ends in a colon, starting with a capital, then one to three chunks
    with no sentence end (``Name: John Doe``, ``- State: Texas``): a record, not a sentence."""
    chunks = line.split()
    if chunks and (chunk_kind(chunks[0]) == "neutral" or chunks[0] in ("-", "*", "+")):
        chunks = chunks[1:]  # a list mark
    head = next((k for k, c in enumerate(chunks[:5]) if c.endswith(":")), None)
    if head is None or not chunks[0][:1].isupper():
        return False
    value = chunks[head + 1 :]
    return 0 < len(value) <= 3 and value[-1][-1] not in ".!?"


def _continues_sentence(lines: list[str], judged: list[LineRole | None], i: int) -> bool:
    """ "...a program that compiles" / "with C++.": the second line ends the sentence above."""
    if not i or judged[i - 1] != LineRole("prose", "prose") or lines[i][:1] in (" ", "\t"):
        return False
    above, line = lines[i - 1].strip(), lines[i].strip()
    ends = line[-1:] in ".!?" or any(_core(c).lower() in _FUNCTION_WORDS for c in line.split())
    return (
        ends
        and not above.startswith(("#", "//", "--"))
        and not re.search(r"[.!?:]$", above)
        and reads_as_sentence(above)
        and reads_as_sentence(f"{above} {lines[i].strip()}")
    )


def _code_then_prose(line: str) -> int:
    """Where the sentence starts in "2. int y = x * 2; This doubles x.", or -1: a statement that
    ends in ``;`` with code in it, then words."""
    m = re.search(r";\s+(?=\S)", line)
    if not m or not line[m.end() :].strip():
        return -1
    head = line[: m.start()]
    if 0 < _prose_then_code(line) <= m.start():
        return -1  # "Translate this code: a = 1; b = 2": the sentence comes first
    if any(k == "code" for _, k in _chunks(head)) and not line_is_prose(head):
        return m.end()
    return -1


def _prose_then_code(line: str) -> int:
    """Where the code starts in "Fix the error in this code: def f(x):", or -1: a sentence up to
    a colon, code after it."""
    ticked = _backtick_runs(line) + [(t.start(), t.end()) for t in re.finditer(r"`[^`\n]+`", line)]
    # a colon inside inline code ("``{'x': 1}``") belongs to the code
    m = next(
        (c for c in re.finditer(r"[:?]\s+(?=\S)", line) if not any(a <= c.start() < b for a, b in ticked)),
        None,
    )
    if not m:
        return -1
    head, tail = line[: m.start() + 1], line[m.end() :]
    if reads_as_sentence(head) and (not line_is_prose(tail) or _short_phrase(tail) or _printed_error(tail)):
        return m.end()
    return -1


# Words that pick one error out of several ("Main error: ...", "Another error: ..."): a sentence's.
_WHICH_ONE = frozenset(
    [
        "one",
        "another",
        "main",
        "first",
        "last",
        "second",
        "next",
        "other",
        "same",
        "common",
        "typical",
        "possible",
        "potential",
        "logical",
    ]
)


def _names_an_error(word: str) -> bool:
    return word.lower() in ("error", "warning", "exception") or bool(
        re.fullmatch(r"[A-Z]\w*(?:Error|Exception|Warning)", word)
    )


def _printed_error(text: str) -> bool:
    """An error message as a program prints it: a word naming an error, warning or exception (a
    type name such as ``TypeError`` included) after at most two capitalised words ("PHP Fatal
    error"), then a colon, or a code and a colon ("Error 404:"), and the message."""
    first = re.match(r"\s*(\S+)(?:\s+(\S+))?(?:\s+(\S+))?", text)
    if not first:
        return False
    words = [w for w in first.groups() if w]
    if words[0].lower() in _FUNCTION_WORDS | _WHICH_ONE:
        return False  # "The error: it is wrong" names an error, it does not print one
    for k, word in enumerate(words[:3]):
        if word.endswith(":") and len(word) > 1:
            if not text[first.end(k + 1) :].strip():
                return False  # "Warning:" over a paragraph is its heading, no message printed
            named = [w.rstrip(":") for w in words[: k + 1]]
            if len(named) > 1 and re.search(r"\d", named[-1]) and _names_an_error(named[-2]):
                named.pop()  # "Error 404:", "warning C4996:"
            return _names_an_error(named[-1]) and all(re.fullmatch(r"[A-Z][A-Za-z]*", w) for w in named[:-1])
    return False


def _why_code(line: str) -> str:
    body = line.strip()
    kinds = [k for _, k in _chunks(body)]
    if "word" not in kinds:
        return "no natural-language word"
    if _SQL_STATEMENT.match(body) or _SQL_CLAUSE.match(body):
        return "SQL statement"
    if _MAPPING.match(line):
        return "key: value mapping"
    if _whole_literal(body):
        return "quoted literal"
    if re.search(r"[;{}]\s*$", body):
        return "statement end"
    return "code-bearing chunks, not a sentence"


# ---- Python as a whole ---------------------------------------------------------------------------


class _Blank(ast.NodeTransformer):
    """Blanks docstrings so that translated ones compare equal."""

    def _strip(self, node: ast.AST) -> ast.AST:
        self.generic_visit(node)
        body = getattr(node, "body", None)
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body[0].value.value = ""
        return node

    visit_Module = visit_ClassDef = visit_FunctionDef = visit_AsyncFunctionDef = _strip


def python_tree(text: str, blank_docstrings: bool) -> str | None:
    """``ast.dump`` of real Python (at least one statement that is not a bare name or constant)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None

    def trivial(node: ast.stmt) -> bool:  # "Hello", "42", "apples, pears"
        value = getattr(node, "value", None) if isinstance(node, ast.Expr) else None
        return isinstance(value, ast.Name | ast.Constant) or (
            isinstance(value, ast.Tuple) and all(isinstance(e, ast.Name) for e in value.elts)
        )

    if all(trivial(node) for node in tree.body):
        return None
    if blank_docstrings:
        tree = _Blank().visit(tree)
    return ast.dump(tree)


def _python_prefix(lines: list[str]) -> int:
    """How many leading lines are Python when the turn as a whole is not (code, then its output
    or a note): the lines before the first one the parser refuses, when they parse on their own
    and hold at least two lines of code. Their comments are the code's (``# Output:`` after a
    program is a comment, not a heading). 0 when there is no such prefix."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse("\n".join(lines))
    except SyntaxError as exc:
        end = (exc.lineno or 1) - 1
    except (ValueError, RecursionError, MemoryError):
        return 0
    else:
        return 0
    code = [ln for ln in lines[:end] if ln.strip() and not ln.lstrip().startswith("#")]
    if len(code) < 2 or python_tree("\n".join(lines[:end]), False) is None:
        return 0
    return end


def _docstring_lines(code: str, first: int) -> set[int]:
    """Line indexes (offset by ``first``) inside the docstrings of ``code``, quotes included."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    lines: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            lines.update(range(first + body[0].lineno - 1, first + (body[0].end_lineno or body[0].lineno)))
    return lines


def _without_comment(line: str) -> str:
    """The line with a trailing ``# comment`` removed (a ``#`` inside quotes is left alone)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i].rstrip()
    return line


# ---- verbatim blocks -----------------------------------------------------------------------------

_OUTPUT_WORDS = {"output", "outputs", "stdout", "print", "prints", "printed", "run", "content", "contents"}
_OUTPUT_KINDS = {"expected", "sample", "example", "program", "console"}
_LINKING_WORDS = {"is", "are", "will", "would", "should", "be"}


def is_output_header(line: str) -> bool:
    """A line that announces program output or file contents: at most seven words ending in an
    output word (a linking verb may follow it) and a colon ("Output:", "The program prints:",
    "data.csv contents:"), or "Expected output" on its own."""
    body = line.strip().strip("#*>_- ").rstrip("*_ ")
    words = body.lower().rstrip(":").split()
    if not words or len(words) > 9:
        return False
    if not body.endswith(":"):
        return len(words) == 2 and words[0] in _OUTPUT_KINDS and words[1] == "output"
    while len(words) > 1 and words[-1] in _LINKING_WORDS:
        words.pop()
    return words[-1] in _OUTPUT_WORDS and len(words) <= 7


_OUTPUT_INLINE = re.compile(r"(?i)^[\s#*>_-]*(?:expected\s+)?output\s*:\s*(\S.*)$")
_SESSION_PROMPT = re.compile(r"^\s*(?:>>>|\$)(?:\s|$)")
_DIFF_HEADER = re.compile(r"^(?:diff --git |--- \S|\+\+\+ \S|@@ -\d)")
_TRACEBACK = re.compile(r"^\s*(?:Traceback \(most recent call last\):|Exception in thread )")


def verbatim_lines(lines: list[str]) -> dict[int, str]:
    """Lines that must not change at all, with what they are: program output after an output
    header, what a REPL or shell session prints after its prompt, diff/patch bodies and stack
    traces. Each block runs to the next blank line."""
    found: dict[int, str] = dict.fromkeys(output_lines(lines), "program output")
    for i, line in enumerate(lines):
        if _SESSION_PROMPT.match(line):
            kind = "session output"
        elif _DIFF_HEADER.match(line):
            kind = "patch"
        elif _TRACEBACK.match(line):
            kind = "stack trace"
        else:
            continue
        found.setdefault(i, kind)
        j = i + 1
        while j < len(lines) and lines[j].strip():
            found.setdefault(j, kind)
            j += 1
    return found


def output_lines(lines: list[str]) -> set[int]:
    """Indexes of program-output lines: the block right after an output header. After a blank
    line, a block of sentences is the text going on, not output."""
    found: set[int] = set()
    for i, line in enumerate(lines):
        # the header may end a sentence: "... each iteration. Expected output:"
        if not is_output_header(re.split(r"(?<=[.!?])\s+", line.strip())[-1]):
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        block = []
        while j < len(lines) and lines[j].strip() and not is_output_header(lines[j]):
            block.append(j)
            j += 1
        sentences = all(reads_as_sentence(lines[k]) and lines[k].rstrip()[-1:] in ".!?" for k in block)
        if block and (block[0] == i + 1 or not sentences):
            found.update(block)
    return found


# ---- the row's own code --------------------------------------------------------------------------


def code_vocabulary(text: str) -> frozenset[str]:
    """Names and quoted values that the code lines of ``text`` use: a label elsewhere in the row
    that names one of them (``Table: customer`` for ``FROM customer``) is data, not prose."""
    lines = text.split("\n")
    roles = _judge_lines(lines, line_roles(lines))
    found: set[str] = set()
    for line, role in zip(lines, roles, strict=True):
        if role.role != "code":
            continue
        found.update(re.findall(r"[A-Za-z_]\w*", line))
        found.update(m.group(0)[1:-1] for m in _QUOTED_LITERAL.finditer(line))
    return frozenset(found)


_LABEL = re.compile(r"^\s*[A-Z][\w ]{0,30}:\s+(\S.*?)\s*$")


# ---- the check -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    line: int  # 1-based line of the source turn, 0 for the whole turn
    what: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.what}" if self.line else self.what


def _show(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def first_difference(
    source: str, translated: str, *, translate_comments: bool = False, context: str = "", data_lines: int = 0
) -> Difference | None:
    """None when every piece of code in ``source`` came through ``translated`` unchanged.
    ``context``: the row's other turns, whose code names the data labels of this one.
    ``data_lines``: how many lines at the end of the turn are the task's input, which stays
    byte-identical."""
    if source == translated:
        return None
    src, out = source.split("\n"), translated.split("\n")
    if len(src) != len(out):
        return Difference(0, f"line count changed: {len(src)} -> {len(out)}")
    if is_bare_value(source):
        i = next(k for k in range(len(src)) if src[k] != out[k])
        return Difference(i + 1, f"value answer changed: {_show(src[i])} -> {_show(out[i])}")
    if 0 < data_lines <= len(src):
        for i in range(len(src) - data_lines, len(src)):
            if src[i] != out[i]:
                return Difference(i + 1, f"task input changed: {_show(src[i])} -> {_show(out[i])}")

    # Python as a whole (the turn, or a fenced block): same AST, and every changed line must be a
    # comment or docstring that translate_comments allows to change.
    regions: list[tuple[int, int]] = []
    if python_tree(source, False) is not None:
        regions.append((0, len(src)))
    elif (prefix := _python_prefix(src)) > 0:
        regions.append((0, prefix))
    for first, last, info in fenced_lines(src):
        if info in ("", "python", "py", "python3") and python_tree("\n".join(src[first + 1 : last]), False):
            regions.append((first + 1, last))
    python_lines: set[int] = set()
    for first, last in regions:
        python_lines.update(range(first, last))
        before, after = "\n".join(src[first:last]), "\n".join(out[first:last])
        if python_tree(before, translate_comments) != python_tree(after, translate_comments):
            i = next((k for k in range(first, last) if src[k] != out[k]), first)
            return Difference(i + 1, f"Python code changed (AST differs): {_show(src[i])} -> {_show(out[i])}")
        docstrings = _docstring_lines(before, first) if translate_comments else set()
        for i in range(first, last):
            if src[i] != out[i] and not (
                translate_comments
                and (i in docstrings or _without_comment(src[i]) == _without_comment(out[i]))
            ):
                return Difference(i + 1, f"Python code changed: {_show(src[i])} -> {_show(out[i])}")

    roles = _judge_lines(src, line_roles(src))
    vocabulary: frozenset[str] | None = None
    for i, (s, o) in enumerate(zip(src, out, strict=True)):
        if s == o or i in python_lines:
            continue
        role = roles[i]
        if role.role == "blank":
            if not o.strip():
                up = _neighbour(src, [r.role in ("code", "comment") for r in roles], i, -1)
                down = _neighbour(src, [r.role in ("code", "comment") for r in roles], i, 1)
                if up and down:
                    return Difference(i + 1, f"blank line inside code changed: {_show(s)} -> {_show(o)}")
                continue
            return Difference(i + 1, f"blank line got text: {_show(o)}")
        if role.role in ("code", "comment"):
            if translate_comments and role.keep >= 0 and o[: role.keep] == s[: role.keep]:
                continue
            if (
                role.why == "statement before a sentence"
                and o[: role.keep] == s[: role.keep]
                and _lost_token(s[role.keep :], o[role.keep :]) is None
            ):
                continue
            return Difference(i + 1, f"{role.why} changed: {_show(s)} -> {_show(o)}")
        inline = _OUTPUT_INLINE.match(s)
        if inline and not o.endswith(inline.group(1)):
            return Difference(i + 1, f"program output changed: {_show(s)} -> {_show(o)}")
        if role.why == "prose then code":
            tail = s[role.keep :]
            if not o.endswith(tail):
                return Difference(i + 1, f"code after the sentence changed: {_show(s)} -> {_show(o)}")
            continue
        lost = _lost_token(s, o)
        if lost is not None:
            return Difference(i + 1, f"code token {_show(lost, 40)} lost: {_show(s)} -> {_show(o)}")
        label = _LABEL.match(s)
        if label and context and len(label.group(1).split()) <= 3:
            if vocabulary is None:
                vocabulary = code_vocabulary(context)
            for value in [label.group(1).strip("'\"`"), *label.group(1).split()]:
                if value.strip("'\"`.,") in vocabulary and not re.search(
                    rf"(?<!\w){re.escape(value.strip(chr(39) + chr(34) + '`.,'))}(?!\w)", o
                ):
                    return Difference(i + 1, f"data label the code uses changed: {_show(s)} -> {_show(o)}")
    return None


def _lost_token(source: str, translated: str) -> str | None:
    """The first token that must come through ``source`` found fewer times in ``translated``. A
    token's word-character ends must stand free (``camelCase`` is not in ``camelCasean``)."""
    tokens = code_tokens(source)
    counts = Counter(tokens)
    for token in tokens:
        lead = r"(?<![\w])" if token[0].isalnum() or token[0] == "_" else ""
        trail = r"(?![\w])" if token[-1].isalnum() or token[-1] == "_" else ""
        if len(re.findall(lead + re.escape(token) + trail, translated)) < counts[token]:
            return token
    return None


def verify_turn(
    source: str, translated: str, *, translate_comments: bool = False, context: str = "", data_lines: int = 0
) -> str | None:
    """A one-line description of the first code difference, or None."""
    found = first_difference(
        source, translated, translate_comments=translate_comments, context=context, data_lines=data_lines
    )
    return None if found is None else str(found)

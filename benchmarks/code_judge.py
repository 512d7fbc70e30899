"""An independent judge of code safety: did any line that is not prose change in translation?

It shares nothing with the translate stage's segmenter or verifier (no import, no copied rule) and
starts from the opposite side: instead of finding code, it finds prose. A line is prose only when
it reads as a sentence or a short heading of plain words (list markers and inline code aside);
every other line (code, comments, a program's output, the data of a task) must reach the
published row byte for byte. Inside prose lines, the spans that are code (backticks, quoted
literals, tokens with code punctuation such as ``std::map``, ``x++``, ``os.path``, ``<html>``,
snake_case or camelCase names) must come out unchanged too.

Its rules were written against the labelled rows of one half of the data
(``benchmarks/code_labels.jsonl``); its error per label class on both halves is printed by
``benchmarks/code_safety.py --judge-error`` and recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PROSE, KEEP = "prose", "keep"

_FENCE = re.compile(r"^\s*(```|~~~)")
_COMMENT_START = re.compile(r"^\s*(//|/\*|\*/|\*(\s|$)|<!--|-->|\"\"\"|'''|#!|--\s|;;|%\s|rem\s)", re.I)
_HASH_LINE = re.compile(r"^\s*#")
_LIST_MARKER = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*+\u2022]|\(?[a-zA-Z][.)])\s+")
# A plain word: letters with at most one apostrophe or hyphen inside, optionally wrapped in
# sentence punctuation. Names with code punctuation (os.path, x_y, f(), a++) never match.
_PLAIN = re.compile(
    r"^[(\"'\u201c\u2018]?(?:[A-Za-z]+(?:['\u2019-][A-Za-z]+)*|\d{1,4}(?:[.,]\d+)?%?|[A-Z]{2,}s?|&)"
    r"[)\"'\u201d\u2019]?[.,:;!?]?[)\"'\u201d\u2019]?$"
)
_LOWER_CODE_START = {
    "import", "from", "return", "def", "class", "if", "elif", "else", "else:", "for", "while", "do",
    "done", "fi", "then", "esac", "end", "public", "private", "protected", "static", "using",
    "namespace", "include", "package", "func", "fn", "let", "var", "const", "val", "try", "try:",
    "except", "finally", "finally:", "catch", "throw", "raise", "pass", "break", "continue", "yield",
    "async", "await", "print", "echo", "read", "export", "source", "cd", "ls", "sudo", "pip", "npm",
    "git", "python", "python3", "node", "mkdir", "rm", "cat", "grep", "select", "insert", "update",
    "delete", "create", "drop", "alter", "where", "order", "group", "limit", "union", "join",
    "inner", "left", "right", "on", "set", "values", "with", "new", "self", "this", "int", "void",
    "char", "float", "double", "bool", "string", "auto", "struct", "enum", "typedef", "lambda",
    "not", "and", "or", "in", "is", "del", "global", "nonlocal", "assert", "case", "default",
    "switch", "goto", "extern", "unsigned", "long", "short", "module", "require", "printf", "puts",
    "println", "fmt", "console", "document", "window", "std", "cout", "cin", "chmod", "curl",
}  # fmt: skip
_SQL_UPPER = {
    "SELECT", "FROM", "WHERE", "ORDER", "GROUP", "HAVING", "LIMIT", "INSERT", "UPDATE", "DELETE",
    "CREATE", "DROP", "ALTER", "JOIN", "INNER", "LEFT", "RIGHT", "OUTER", "ON", "AND", "OR", "SET",
    "VALUES", "INTO", "UNION", "BEGIN", "END", "DECLARE", "RETURN", "RETURNS", "PRIMARY", "FOREIGN",
    "CASE", "WHEN", "THEN", "ELSE", "AS", "WITH", "NOT", "IN", "BY", "DISTINCT", "COUNT", "SUM",
    "AVG", "MAX", "MIN", "TABLE", "INDEX", "VIEW", "GRANT", "ASC", "DESC", "IS", "NULL", "LIKE",
}  # fmt: skip

# Inline code inside a prose line.
# A code span opens with a run of backticks and closes at the next run of the same length
# (``order_list()`` in reStructuredText and Markdown alike).
_BACKTICKS = re.compile(r"(?<!`)(`+)(?!`)[^\n]+?(?<!`)\1(?!`)")
_QUOTED = re.compile(r"(?<![\w\u2019+#])(['\"])(?=\S)(.+?)\1(?![\w])")
_CODE_TOKEN = re.compile(
    r"""(?x)
    (?<![\w.$@#<&|+\-*/=!:])(
        [\w$@#.]*::[\w$@#.:<>,*&]+(?:\([^()\s]*\))?          # std::map, Foo::bar()
      | [A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+(?:\([^()]*\))? # os.path, file.txt, console.log()
      | [A-Za-z_$][\w$]*\([^()]*\)                            # f(x), main()
      | [A-Za-z_$][\w$]*(?:\+\+|--)|(?:\+\+|--)[A-Za-z_$]\w*   # x++, --i
      | [A-Za-z_][\w]*<[\w\s,<>?*&:]+>(?:\[\])?               # Map<Character, Integer>
      | </?[A-Za-z][\w-]*(?:\s[^<>]*)?/?>                      # <html>, </div>
      | [A-Za-z_$]\w*(?:\s?(?:<=|>=|==|!=|&&|\|\|)\s?|[<>])[\w$.]+(?:\[[^\]]*\])?  # i<nums.length
      | [a-z]+[A-Z]\w*|[A-Z][a-z]+(?:[A-Z][a-z]*)+              # camelCase, PascalCase
      | \w+\.\.\.\w+                                          # for...of
      | \[[\w\s,.'"+-]*\]                                      # [1, 2, 3]
      | [A-Za-z]*_\w+                                         # snake_case, __init__
      | [$@][A-Za-z_]\w*                                      # $var, @param
      | \#include\s*<[^>]+>|\#\w+                             # #include <iostream>
      | \w*\[[^\]\s]*\]                                       # arr[i], int[]
      | \w+=\S+                                               # key=value
      | (?:<=|>=|==|!=|&&|\|\||=>|->|\+=|-=)                  # a lone operator
    )(?![\w])""",
)


# Names of languages and products are words of the sentence, not code a reader would copy.
_NAMES = {
    "JavaScript", "TypeScript", "CoffeeScript", "PowerShell", "GitHub", "GitLab", "MySQL", "PostgreSQL",
    "SQLite", "MongoDB", "NoSQL", "NumPy", "SciPy", "PyTorch", "TensorFlow", "FastAPI", "WebSocket",
    "WebSockets", "YouTube", "LinkedIn", "PayPal", "iPhone", "macOS", "iOS", "OpenAI", "ChatGPT",
    "DevOps", "BeautifulSoup", "OpenWeatherMap", "JQuery", "jQuery", "WordPress", "VSCode", "IntelliJ",
}  # fmt: skip


def _is_a_name(token: str) -> bool:
    return token in _NAMES or bool(
        re.fullmatch(r"[A-Z][#+]{1,2}|F#|[A-Z][A-Za-z]*\.(?:js|NET|io)|\.NET|ASP\.NET", token)
    )


@dataclass(frozen=True)
class Judged:
    """One line of a turn: ``prose`` or ``keep``, and for prose the inline code it holds."""

    text: str
    kind: str
    inline: tuple[str, ...] = ()


def _words(line: str) -> list[str]:
    return line.split()


def _plain_share(words: list[str]) -> float:
    return sum(bool(_PLAIN.match(w)) for w in words) / max(len(words), 1)


def _reads_as_prose(line: str) -> bool:
    """A sentence or a heading of plain words, once list markers and inline code are set aside."""
    body = _LIST_MARKER.sub("", line, count=1).strip()
    had_marker = body != line.strip()
    if not body:
        return False
    # Inline code does not make a sentence code: take it out before counting words.
    bare = _without_inline_code(body)
    words = _words(bare)
    if not words:
        return False
    first = words[0]
    if first.rstrip(":") in _LOWER_CODE_START and not first[:1].isupper():
        return False
    if re.match(r"[a-z_][\w.-]*:(\s|$)", body) and not had_marker:
        return False  # YAML and other key: value lines ("name: my build job")
    key_value = re.match(r"[A-Z][\w ]{0,30}:\s+(\S.*)$", body)
    if key_value and len(_words(key_value.group(1))) <= 3 and not re.search(r"[.!?]$", body):
        return False  # a label and its value ("State: Texas", "Output: 5")
    if first.rstrip(":;") in _SQL_UPPER and len(words) > 1 and words[1].isupper():
        return False
    if first.rstrip(":;") in _SQL_UPPER and not re.search(r"[a-z]{3,}\s+[a-z]{3,}\s+[a-z]{3,}", body):
        return False
    if re.search(r"[;{]\s*$|^\s*[})\]]|^[\w.$\[\]'\"]+\s*[-+*/%|&]?=(?!=)", _BACKTICKS.sub(" X ", body)):
        return False
    # Assignments and braces weigh less in a long sentence ("... which is 5 * 3 = 15.").
    if len(words) < 8 and re.search(r"\)\s*\{|=\s*[\[{(\"'\d]|[^\s=!<>]=[^\s=]", bare):
        return False
    share = _plain_share(words)
    starts_like_text = bool(re.match(r"[A-Z\"'`(\u201c\u2018]|X\b", bare)) or had_marker
    if len(words) >= 4:
        return share >= 0.7 and (starts_like_text or share >= 0.9)
    # Short lines: a heading ("Output:", "Example usage:") or a short phrase of plain words.
    if not all(_PLAIN.match(w) for w in words):
        return False
    if len(words) == 1:
        word = words[0]
        # A lone word is prose only as a heading ("Explanation:") or a list item: a bare value
        # ("Hello!", "A", "42", "racecar") is the data or the output of a task.
        return (word.endswith(":") and len(word) > 2) or (had_marker and len(word) > 1 and not word.isdigit())
    if body.endswith(":"):
        return True
    return starts_like_text and (
        bare.rstrip()[-1:] in ".!?" or had_marker or (len(words) == 3 and share == 1)
    )


def _prose_then_code(line: str) -> str | None:
    """A sentence that ends in code on the same line ("... syntax: function f(x) { ... }"): the
    sentence, when there is one of at least four words before a colon or question mark."""
    for m in re.finditer(r"[:?](?=\s+\S)", line):
        lead, rest = line[: m.end()], line[m.end() :]
        if len(_words(lead)) >= 4 and _reads_as_prose(lead) and not _reads_as_prose(rest):
            return lead
    return None


def _describes_data(line: str) -> bool:
    """In a task's input, a line is prose only when it is a sentence about the data, not the data:
    most of its words plain as they stand (quoted values count against it), no ``key: value``."""
    words = _words(line)
    if (
        line.rstrip().endswith(":")
        and len(words) <= 4
        and line.count(":") == 1
        and words[0] not in _LOWER_CODE_START
        and not re.search(r"[=;{}()<>$]", line)
    ):
        return True  # a heading over the data ("input.txt content:")
    return (
        len(words) >= 4
        and _plain_share(words) >= 0.75
        and sum(bool(re.fullmatch(r"[a-z]{2,}[.!?]?", w)) for w in words) >= 2
        and not re.search(r"\w:\s*\S|[=;{}<>$]", line)
        and words[0] not in _LOWER_CODE_START
    )


def _turn_has_code(lines: list[str]) -> bool:
    return sum(1 for ln in lines if ln.strip() and not _reads_as_prose(ln)) >= 2


def judge_lines(text: str, *, data_from: int | None = None) -> list[Judged]:
    """Every line of a turn, judged. ``data_from`` is the first line of a task's input (the part of
    an instruction row given as data): there a line is prose only when it is a real sentence."""
    lines = text.split("\n")
    judged: list[Judged] = []
    in_fence = False
    closing: str | None = None  # the end of the block comment or docstring the line is in
    code_turn = _turn_has_code(lines)
    for i, line in enumerate(lines):
        if not line.strip():
            judged.append(Judged(line, PROSE))
            continue
        if closing is not None:
            if closing in line:
                closing = None
            judged.append(Judged(line, KEEP))
            continue
        closing = _opens_block_comment(line)
        if _FENCE.match(line):
            in_fence = not in_fence
            judged.append(Judged(line, KEEP))
            continue
        if in_fence or _COMMENT_START.match(line):
            judged.append(Judged(line, KEEP))
            continue
        if _HASH_LINE.match(line) and (code_turn or not re.match(r"^#{1,6}\s+[A-Z]", line)):
            judged.append(Judged(line, KEEP))
            continue
        if closing is not None:
            judged.append(Judged(line, KEEP))
            continue
        if line[:1] in (" ", "\t") and not _LIST_MARKER.match(line) and _indented_code(lines, i):
            judged.append(Judged(line, KEEP))
            continue
        prose = _describes_data(line) if data_from is not None and i >= data_from else _reads_as_prose(line)
        if prose:
            judged.append(Judged(line, PROSE, inline_code(line)))
            continue
        lead = _prose_then_code(line) if data_from is None or i < data_from else None
        judged.append(
            Judged(line, PROSE, (*inline_code(lead), line[len(lead) :].strip()))
            if lead
            else Judged(line, KEEP)
        )
    return judged


def _opens_block_comment(line: str) -> str | None:
    """The closing mark when the line opens a docstring or block comment it does not close."""
    for opening, close in (('"""', '"""'), ("'''", "'''"), ("/*", "*/"), ("<!--", "-->")):
        at = line.find(opening)
        # A triple quote in the middle of a prose sentence is not a docstring.
        starts = (
            opening in ("/*", "<!--") or not line[:at].strip() or line[:at].rstrip().endswith(("=", "(", ","))
        )
        if at >= 0 and close not in line[at + len(opening) :] and starts:
            return close
    return None


def _long_sentence(line: str) -> bool:
    bare = _without_inline_code(line.strip())
    words = _words(bare)
    ends = bare.rstrip()[-1:] in ".?!:"
    return ((len(words) >= 8 and ends) or len(words) >= 12) and _plain_share(words) >= 0.8


def _indented_code(lines: list[str], i: int) -> bool:
    """An indented line is code unless it continues a prose paragraph or list item above it, or
    is itself a long sentence (block comments and docstrings are kept before this is asked)."""
    if _long_sentence(lines[i]):
        return False
    j = i - 1
    while j >= 0 and lines[j].strip() and lines[j][:1] in (" ", "\t"):
        j -= 1
    if j < 0 or not lines[j].strip():
        return not _reads_as_prose(lines[i]) or bool(re.search(r"[;{}()=]", lines[i]))
    above = lines[j]
    return not (_reads_as_prose(above) and not above.rstrip().endswith(":") and _reads_as_prose(lines[i]))


def _without_inline_code(text: str) -> str:
    for span in sorted(inline_code(text), key=len, reverse=True):
        text = text.replace(span, " X ")
    return text


def inline_code(line: str) -> tuple[str, ...]:
    """The spans of a prose line that are code and must survive translation verbatim."""
    found: list[tuple[int, int]] = []

    def take(start: int, end: int) -> None:
        # A span that holds others whole ("['c', 'a']" around "'c'") takes their place.
        inside = [(s, e) for s, e in found if start <= s and e <= end]
        if any(s < end and start < e for s, e in found if (s, e) not in inside):
            return
        if inside and (end - start) == max(e - s for s, e in inside):
            return
        for span in inside:
            found.remove(span)
        found.append((start, end))

    for m in _BACKTICKS.finditer(line):
        take(m.start(), m.end())
    for m in _QUOTED.finditer(line):
        inner = m.group(2)
        # A quoted span is a literal unless it is a long quotation of plain words.
        if len(_words(inner)) <= 4 or not all(_PLAIN.match(w) for w in _words(inner)):
            take(m.start(), m.end())
    for m in _CODE_TOKEN.finditer(line):
        token = m.group(1).rstrip(".,:;!?")
        if token.endswith(")") and token.count("(") < token.count(")"):
            token = token[:-1]
        if re.fullmatch(r"[A-Za-z]+\.[A-Za-z]+", token) and token.split(".")[1][:1].isupper():
            continue  # two sentences without a space ("end.Next"), not a name
        if re.fullmatch(r"(?:e\.g|i\.e|etc|vs|a\.m|p\.m)\.?", token, re.I) or _is_a_name(token):
            continue
        if token:
            take(m.start(1), m.start(1) + len(token))
    return tuple(line[s:e] for s, e in sorted(found))


@dataclass(frozen=True)
class Change:
    line: int
    kind: str  # "line" (a kept line changed or went missing) or "inline" (inline code lost)
    before: str
    after: str | None


def changes(source: str, published: str, *, data_from: int | None = None) -> list[Change]:
    """What a translation changed that it must not: kept lines that are not in the published turn
    at their place, and inline code of prose lines missing from the published line."""
    judged = judge_lines(source, data_from=data_from)
    after = published.split("\n")
    same_shape = len(after) == len(judged)
    found: list[Change] = []
    cursor = 0
    for i, line in enumerate(judged):
        if not line.text.strip():
            continue
        if same_shape:
            counterpart = after[i]
        else:  # line count changed: find kept lines in order
            hit = next((k for k in range(cursor, len(after)) if after[k] == line.text), None)
            counterpart = after[hit] if hit is not None and line.kind == KEEP else None
            if hit is not None and line.kind == KEEP:
                cursor = hit + 1
        if line.kind == KEEP:
            if counterpart != line.text:
                found.append(Change(i, "line", line.text, counterpart))
            continue
        where = counterpart if same_shape else published
        for token in line.inline:
            if token not in (where or ""):
                found.append(Change(i, "inline", token, counterpart))
    return found

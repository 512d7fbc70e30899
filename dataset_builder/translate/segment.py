"""Split a turn into code, which must pass through byte for byte, and prose, which is translated.

Block level: fenced blocks (``` and ~~~), indented blocks after a blank line, runs of lines that
look like code (Python that ``ast`` accepts, and shell, SQL, JavaScript, Java, C lines by their
shape), and whole turns that are code without fences. Inline level, inside prose: `code`, URLs,
paths and file names, identifiers (snake_case, CamelCase, dotted.names, calls()), numbers and
format placeholders. Concatenating the spans always gives back the turn exactly.
"""

from __future__ import annotations

import ast
import re
import tokenize
import warnings
from dataclasses import dataclass
from io import StringIO
from typing import Literal

Kind = Literal["code", "prose", "raw"]


@dataclass(frozen=True)
class Span:
    kind: Kind
    text: str
    # For prose inside code (comments, docstrings): text its translation must not contain, or the
    # code would break (a newline ends a comment; the closing quotes end a docstring).
    forbid: tuple[str, ...] = ()


_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")
_MD_PREFIX = re.compile(r"^([ \t]*(?:#{1,6}[ \t]+|[-*+][ \t]+|\d{1,3}[.)][ \t]+|>[ \t]?)*)")
_CODE_START = re.compile(
    r"""^\s*(?:
        def\s+\w+\s*\(|class\s+\w+[\s(:]|import\s+[\w.]+|from\s+[\w.]+\s+import\b|return\b|yield\b|raise\b|
        (?:el)?if\s.*:\s*$|else\s*:|for\s.+\sin\s.+:\s*$|while\s.+:\s*$|try\s*:|except\b.*:\s*$|finally\s*:|
        with\s.+:\s*$|async\s+def\b|await\s|lambda\b|@[\w.]+|print\s*\(|assert\s|pass\s*$|break\s*$|continue\s*$|
        \#include\b|\#!|(?:public|private|protected|static)\s|function\s+\w*\s*\(|(?:const|let|var)\s+\w+\s*=|
        console\.log\(|System\.out\.|package\s+[\w.]+;|
        (?:SELECT|INSERT\s+INTO|UPDATE|DELETE\s+FROM|CREATE\s+(?:TABLE|INDEX|DATABASE|VIEW)|ALTER\s+TABLE|
           DROP\s+TABLE|WITH\s+\w+\s+AS)\b|
        \$\s|>>>\s|(?:sudo|pip3?|npm|yarn|git|cd|ls|mkdir|rm|cp|mv|echo|export|curl|wget|docker|python3?|conda|apt(?:-get)?)\s
    )""",
    re.VERBOSE,
)
_CODE_SHAPE = re.compile(
    r"""(?:
        ^\s*[\w.\[\]'"]+\s*(?:[-+*/%&|^]|//|\*\*|>>|<<)?=(?!=)\s*\S|   # assignment
        [;{}]\s*$|^\s*[})\]]+[;,)]*\s*$|                           # C-family line ends, closers
        ^\s*\w+(?:\.\w+)*\(.*\)\s*;?\s*$|                          # a bare call
        ^\s*</?[A-Za-z][\w-]*(?:\s[^<>]*)?>                        # markup
    )""",
    re.VERBOSE,
)
_SENTENCE_LIKE = re.compile(r"[A-Za-zА-Яа-яЁё]{2,}\s+[A-Za-zА-Яа-яЁё]{2,}\s+[A-Za-zА-Яа-яЁё]{2,}.*[.!?:]$")


def _is_python(text: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes in the text's strings are not our news
            tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    for node in tree.body:
        # A lone name or constant parses too ("Hello", "42"): that is not code.
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Name | ast.Constant):
            continue
        return True
    return False


def is_code_line(line: str) -> bool:
    stripped = line.strip()
    if not stripped:
        return False
    if _CODE_START.match(line) or _CODE_SHAPE.search(line):
        # "Return the sum of the list." starts like code but reads like a sentence.
        return not (_SENTENCE_LIKE.search(stripped) and not _is_python(stripped))
    return "(" in stripped and _is_python(stripped)


def is_code_document(text: str) -> bool:
    """A whole turn that is code without fences: Python that parses and has at least one real
    statement, or text whose non-blank lines all look like code."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or _FENCE.match(lines[0]):
        return False
    if "\n" in text.strip() and _is_python(text):
        return True
    return len(lines) >= 2 and all(
        is_code_line(ln) or ln.lstrip().startswith(("#", "//", "--")) for ln in lines
    )


def _split_prose_line(line: str) -> list[Span]:
    body = line.rstrip("\n")
    newline = line[len(body) :]
    prefix = _MD_PREFIX.match(body).group(1)
    content = body[len(prefix) :]
    trimmed = content.rstrip()
    spans = [Span("raw", prefix)] if prefix else []
    if trimmed:
        lead = len(trimmed) - len(trimmed.lstrip())
        if lead:
            spans.append(Span("raw", trimmed[:lead]))
        spans.append(Span("prose" if re.search(r"[^\W\d_]", trimmed) else "raw", trimmed[lead:]))
    tail = content[len(trimmed) :] + newline
    if tail:
        spans.append(Span("raw", tail))
    return spans


def segment(text: str) -> list[Span]:
    """Spans of a turn; ``"".join(s.text for s in segment(t)) == t`` always holds."""
    if is_code_document(text):
        return [Span("code", text)]
    lines = text.splitlines(keepends=True)
    spans: list[Span] = []
    i = 0
    prev_blank = True
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            marker = fence.group(1)
            j = i + 1
            while j < len(lines) and not re.match(
                rf"^[ \t]{{0,3}}{marker[0]}{{{len(marker)},}}\s*$", lines[j]
            ):
                j += 1
            spans.append(Span("code", "".join(lines[i : j + 1])))
            i, prev_blank = j + 1, False
            continue
        indented = line.startswith(("    ", "\t")) and line.strip()
        in_code = spans and spans[-1].kind == "code"
        if (indented and (prev_blank or in_code)) or is_code_line(line):
            j = i + 1
            # A code run goes on through blank lines while code follows them.
            while j < len(lines):
                nxt = lines[j]
                if not nxt.strip():
                    k = j
                    while k < len(lines) and not lines[k].strip():
                        k += 1
                    if k < len(lines) and (is_code_line(lines[k]) or lines[k].startswith(("    ", "\t"))):
                        j = k
                        continue
                    break
                if _FENCE.match(nxt) or not (is_code_line(nxt) or nxt.startswith(("    ", "\t", "#", "}"))):
                    break
                j += 1
            spans.append(Span("code", "".join(lines[i:j])))
            i, prev_blank = j, False
            continue
        spans.extend(_split_prose_line(line))
        prev_blank = not line.strip()
        i += 1
    return _merge(spans)


def _merge(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for span in spans:
        if out and out[-1].kind == span.kind and span.kind != "prose":
            out[-1] = Span(span.kind, out[-1].text + span.text)
        else:
            out.append(span)
    return out


_STRING_PREFIX = re.compile(r"^[rRuU]?(\"\"\"|'''|\"|')")


def python_prose(code: str) -> list[tuple[int, int, tuple[str, ...]]]:
    """``(start, end, forbid)`` character ranges of the prose inside Python code: ``# comment``
    texts and docstrings (between their quotes). [] if the code is not Python."""
    starts = [0]
    for line in code.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    ranges: list[tuple[int, int, tuple[str, ...]]] = []
    try:
        for tok in tokenize.generate_tokens(StringIO(code).readline):
            if tok.type == tokenize.COMMENT:
                body = tok.string[1:].lstrip()
                if body and re.search(r"[^\W\d_]{2,}", body):
                    start = starts[tok.start[0] - 1] + tok.start[1] + (len(tok.string) - len(body))
                    ranges.append((start, start + len(body), ("\n", "\r")))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return sorted(ranges)
    lines = code.splitlines(keepends=True)

    def offset(lineno: int, col_bytes: int) -> int:  # ast columns count UTF-8 bytes
        return starts[lineno - 1] + len(
            lines[lineno - 1].encode("utf-8")[:col_bytes].decode("utf-8", "ignore")
        )

    for node in ast.walk(tree):
        if (
            not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            or not node.body
        ):
            continue
        first = node.body[0]
        if not (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            continue
        start, end = offset(first.lineno, first.col_offset), offset(first.end_lineno, first.end_col_offset)
        literal = code[start:end]
        quote = _STRING_PREFIX.match(literal)
        if quote is None or not literal.endswith(quote.group(1)):
            continue  # implicitly concatenated strings and the like: leave them alone
        inner_start, inner_end = start + quote.end(), end - len(quote.group(1))
        if re.search(r"[^\W\d_]{2,}", code[inner_start:inner_end]):
            ranges.append((inner_start, inner_end, (quote.group(1), "\\")))
    return sorted(ranges)


# ---- inline protection ---------------------------------------------------------------------------

_INLINE = re.compile(
    r"""
    (?P<code>``[^`\n]+``|`[^`\n]+`)|
    (?P<url>\b(?:https?|ftp)://[^\s<>"'`]+[^\s<>"'`.,;:!?)\]])|
    (?P<path>(?:~|\.{1,2})/[\w.\-]+(?:/[\w.\-]+)*|(?<![\w/])/[\w.\-]+(?:/[\w.\-]+)+|\b[A-Za-z]:\\[\w.\-\\]+|\b[\w\-]+(?:/[\w.\-]+)+\.\w+|
        \b[\w\-]+\.(?:py|pyi|ipynb|txt|csv|tsv|json|jsonl|md|rst|js|ts|jsx|tsx|html|css|sh|yml|yaml|toml|cfg|ini|
        sql|java|cpp|cc|hpp|c|h|rb|go|rs|php|xml|log|env|lock|zip|gz|tar|parquet|pkl|db|sqlite|png|jpg|pdf)\b)|
    (?P<placeholder>\{[\w.\[\]:!<>^=+\-#,%]*\}|%[-+ 0\#]*\d*(?:\.\d+)?[sdifrxXoeEgGc]|\$\{?\w+\}?)|
    (?P<call>\b[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*\([^()\n]{0,60}\))|
    (?P<dotted>\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+\b(?<!\be\.g)(?<!\bi\.e)(?<!\betc))|
    (?P<ident>\b_*[A-Za-z]\w*_\w*\b|\b__\w+__\b|\b[a-z]+[A-Z]\w*\b|\b[A-Z][a-z0-9]+[A-Z]\w*\b|\b[A-Z]{2,}[a-z]+\w*\b)|
    (?P<kwarg>\b[A-Za-z_]\w*=[\w.'"()\[\]]+)|
    (?P<operator>(?<=\s)(?:==|!=|<=|>=|\+=|-=|\*\*|//|->|=>|&&|\|\|)(?=\s))|
    (?P<number>(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?%?(?![\w]))
    """,
    re.VERBOSE,
)

PLACEHOLDER = "\u27e6{}\u27e7"  # ⟦n⟧: never in real text, copied through by the model or caught missing
_PLACEHOLDER_RE = re.compile("\u27e6(\\d+)\u27e7")


@dataclass(frozen=True)
class Protected:
    """Prose with its inline code replaced by numbered placeholders."""

    text: str
    spans: tuple[str, ...]

    def restore(self, translated: str) -> str | None:
        """Put the spans back into a translation of ``self.text`` (or of any part of it: spans are
        numbered globally). None unless the translation has exactly the placeholders its source
        had, each once, and is not empty where the source was not."""
        wanted = sorted(_PLACEHOLDER_RE.findall(self.text))
        if sorted(_PLACEHOLDER_RE.findall(translated)) != wanted or (
            self.text.strip() and not translated.strip()
        ):
            return None
        return _PLACEHOLDER_RE.sub(lambda m: self.spans[int(m.group(1))], translated)

    def fragments(self) -> list[tuple[str, bool]]:
        """``(piece, is_code)`` pieces: the prose between placeholders and the spans themselves."""
        out: list[tuple[str, bool]] = []
        pos = 0
        for m in _PLACEHOLDER_RE.finditer(self.text):
            if m.start() > pos:
                out.append((self.text[pos : m.start()], False))
            out.append((self.spans[int(m.group(1))], True))
            pos = m.end()
        if pos < len(self.text):
            out.append((self.text[pos:], False))
        return out


def protect(prose: str) -> Protected:
    spans: list[str] = []

    def repl(match: re.Match[str]) -> str:
        spans.append(match.group(0))
        return PLACEHOLDER.format(len(spans) - 1)

    return Protected(_INLINE.sub(repl, prose), tuple(spans))


def code_fingerprint(text: str) -> list[str]:
    """The code of a turn, in order: block spans and inline spans. A translation must keep it."""
    out = []
    for span in segment(text):
        if span.kind == "code":
            out.append(span.text)
        elif span.kind == "prose":
            out.extend(protect(span.text).spans)
    return out

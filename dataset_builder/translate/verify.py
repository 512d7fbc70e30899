"""Prove that a translation left the code alone, without asking the segmenter what code is.

The translate stage decides what to send to the model with :mod:`~dataset_builder.translate.segment`.
This module shares no code and no rule table with it, so a segmenter mistake cannot hide here. It
compares a source turn with its translation in five ways, and reports the first difference:

1. **Lines.** Translation keeps the line structure (prose is translated inside its line), so line
   *i* of the source faces line *i* of the output; a different number of lines is a failure.
2. **Fenced blocks** (found by a scanner of its own): every line inside a fence is unchanged.
3. **Python as a whole**: a turn or fenced block that Python parses must give the same
   ``ast.dump`` after translation (docstrings blanked when comments are translated).
4. **Changed lines must read as prose.** A line that changed is a failure when it is not clearly
   prose and either carries code by its own shape (a third of it code tokens, indentation with
   code tokens, a statement end) or sits between lines that do (a line between code lines is code).
   After a program-output header ("Output:", "Expected output:") the block that follows is output
   and must not change at all.
5. **Code tokens.** Every code-carrying token of a changed line reappears in the translated line:
   identifiers with ``_``, digits, camelCase or in capitals, dotted names, bracket/operator runs,
   format placeholders and quoted literals. Translation may reorder words in a sentence, so the
   tokens are compared as a multiset per line, not in order.

With ``translate_comments`` the comment text of a line (after ``#``) may change, and a prose
docstring line may too; everything else is held to the same rules.
"""

from __future__ import annotations

import ast
import itertools
import re
import warnings
from collections import Counter
from dataclasses import dataclass

# ---- code tokens ---------------------------------------------------------------------------------

_WORD = re.compile(r"(?<![\w.])[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_PUNCT_RUN = re.compile(r"[^\w\s]+")
_BACKTICKS = re.compile(r"(`+)[^`\n]+?\1")
_CALL = re.compile(r"[A-Za-z_][\w.]*[?!]?\([^()\n]{0,80}\)")
_FLAG = re.compile(r"(?<!\S)--?[A-Za-z][\w-]*")
_QUOTED = re.compile(r"""(?<![\w'"`])(?:"[^"\n]{1,80}"|'[^'\n]{1,80}')(?![\w'"`])""")
_FORMAT = re.compile(r"%[-+ 0#]*\d*(?:\.\d+)?[sdifrxXoeEgGc]\b")
# Characters that only code uses in running text: one of them makes a punctuation run code.
_CODE_CHARS = set("=<>{}[]|&^~$@\\+`")


def _word_is_code(word: str) -> bool:
    if "." in word:
        parts = word.split(".")
        # "e.g", "i.e", "U.S": dotted single letters are abbreviations, not attribute access.
        return any(len(p) > 1 for p in parts)
    if "_" in word or any(ch.isdigit() for ch in word):
        return True
    letters = [ch for ch in word if ch.isalpha()]
    if len(letters) >= 2 and all(ch.isupper() for ch in letters):
        return True  # ALL_CAPS: constants, SQL keywords, acronyms
    # camelCase / PascalCase with an inner capital after a lower-case letter: myVar, HttpClient
    return any(a.islower() and b.isupper() for a, b in itertools.pairwise(word))


def _punct_is_code(run: str) -> bool:
    if any(ch in _CODE_CHARS for ch in run):
        return True
    if "()" in run or "//" in run or "::" in run or "->" in run:
        return True
    return (len(run) >= 2 and ";" in run) or ("*" in run and run.strip("*") != "")


def code_tokens(line: str) -> list[str]:
    """The code-carrying tokens of one line, in order of appearance."""
    found: list[tuple[int, str]] = []
    taken = bytearray(len(line))
    for pattern in (_BACKTICKS, _CALL, _QUOTED, _FORMAT, _FLAG):
        for m in pattern.finditer(line):
            if not any(taken[m.start() : m.end()]):
                found.append((m.start(), m.group(0)))
                taken[m.start() : m.end()] = b"\x01" * (m.end() - m.start())
    for m in _WORD.finditer(line):
        if not any(taken[m.start() : m.end()]) and _word_is_code(m.group(0)):
            found.append((m.start(), m.group(0)))
    for m in _PUNCT_RUN.finditer(line):
        if not any(taken[m.start() : m.end()]) and _punct_is_code(m.group(0)):
            found.append((m.start(), m.group(0)))
    return [tok for _, tok in sorted(found)]


# ---- how a line reads ----------------------------------------------------------------------------

_NATURAL_WORD = re.compile(r"^[(\[\"'«“]*[A-Za-zÀ-ÿ][a-zà-ÿ'’\-]*[)\]\"'»”.,;:!?]*$")
_PROSE_BREAKER = re.compile(r"[{};\\]\s*$|=>\s*$|->\s*$")
_LIST_MARK = re.compile(r"^(?:[-*+>#]+\s*|\d{1,3}[.)]\s*)+")
_STATEMENT_END = re.compile(r"(?:[{};]|\)\s*:|=>|->|\\)\s*$")
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


def clearly_prose(line: str) -> bool:
    """A sentence, not a line of code with words in it: at least three natural-language words
    make up the line once its code tokens are set aside (numbers and single letters are neutral),
    it starts like a sentence (a capital, a quote, a list marker) or runs to six words, and, around
    inline code, the words are at least 40% of its characters. Code keeps its plain words
    (``std::cout << x``, ``for file in "$dir"/*``, ``ls | wc -l``): none of those is prose."""
    body = line.strip()
    if not body or _PROSE_BREAKER.search(body):
        return False
    tokens = code_tokens(body)
    rest = body
    for tok in tokens:
        rest = rest.replace(tok, " ", 1)
    parts = [p for p in rest.split() if _letters(p) >= 2 or p.lower() in ("a", "i")]
    words = [p for p in parts if (_NATURAL_WORD.match(p) and _letters(p) >= 2) or p.lower() in ("a", "i")]
    if len(words) < 0.8 * len(parts):
        return False
    if tokens and len(words) >= 2 and all(t.startswith("`") for t in tokens):
        return True  # the author marked the code: "Then run `python main.py`."
    if len(words) < 3:
        return False
    lead = _LIST_MARK.sub("", body)[:1]
    if not (lead.isupper() or lead in "\"'“«(" or len(words) >= 6):
        return False
    if tokens:
        nonspace = len(body) - body.count(" ")
        return sum(len(w) for w in words) >= 0.4 * nonspace
    return len(words) >= 5 or body[-1] in ".!?:"


def _letters(word: str) -> int:
    return sum(ch.isalpha() for ch in word)


def carries_code(line: str) -> bool:
    """A line that is code by its own shape, whatever surrounds it."""
    body = line.strip()
    if not body:
        return False
    if _STATEMENT_END.search(body):
        return True
    tokens = code_tokens(body)
    if not tokens:
        return False
    if line[:1] in (" ", "\t") and len(line) - len(line.lstrip()) >= 2:
        return True
    return sum(len(t) for t in tokens) >= 0.3 * len(body.replace(" ", ""))


# ---- structure -----------------------------------------------------------------------------------


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


# ---- the check -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    line: int  # 1-based line of the source turn, 0 for the whole turn
    what: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.what}" if self.line else self.what


def _show(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def first_difference(source: str, translated: str, *, translate_comments: bool = False) -> Difference | None:
    """None when every piece of code in ``source`` came through ``translated`` unchanged."""
    src, out = source.split("\n"), translated.split("\n")
    if len(src) != len(out):
        return Difference(0, f"line count changed: {len(src)} -> {len(out)}")
    verbatim = verbatim_lines(src)

    # Python as a whole (the turn, or a fenced block): same AST, and every changed line must be a
    # comment or docstring that translate_comments allows to change.
    regions: list[tuple[int, int]] = []  # [first, last) line ranges of Python code
    if python_tree(source, False) is not None:
        regions.append((0, len(src)))
    fenced: set[int] = set()
    fence_marks: set[int] = set()
    for first, last, info in fenced_lines(src):
        fenced.update(range(first, last + 1))
        fence_marks.update((first, last))
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
            if src[i] == out[i]:
                continue
            allowed = (
                translate_comments
                and i not in verbatim
                and (i in docstrings or _without_comment(src[i]) == _without_comment(out[i]))
            )
            if not allowed:
                return Difference(i + 1, f"Python code changed: {_show(src[i])} -> {_show(out[i])}")

    for i in sorted(fenced - python_lines):
        if src[i] != out[i]:
            return Difference(i + 1, f"fenced code changed: {_show(src[i])} -> {_show(out[i])}")

    # Fence lines are judged with their blocks, not as neighbours of the text around them.
    code_like = [carries_code(line) and i not in fence_marks for i, line in enumerate(src)]
    for i, (s, o) in enumerate(zip(src, out, strict=True)):
        if s == o or i in fenced or i in python_lines:
            continue
        if i in verbatim:
            return Difference(i + 1, f"{verbatim[i]} changed: {_show(s)} -> {_show(o)}")
        if not s.strip() and not o.strip():
            # Whitespace of a blank line is the code's only inside a code block (" \n" in C).
            up = next((code_like[k] for k in range(i - 1, -1, -1) if src[k].strip()), False)
            down = next((code_like[k] for k in range(i + 1, len(src)) if src[k].strip()), False)
            if up and down:
                return Difference(i + 1, f"blank line inside code changed: {_show(s)} -> {_show(o)}")
            continue
        inline = _OUTPUT_INLINE.match(s)
        if inline and not o.endswith(inline.group(1)):
            return Difference(i + 1, f"program output changed: {_show(s)} -> {_show(o)}")
        lost = _lost_token(s, o)
        if lost is not None:
            return Difference(i + 1, f"code token {_show(lost, 40)} lost: {_show(s)} -> {_show(o)}")
        # An output header ("input.txt content:") is a label: its words may be translated.
        if clearly_prose(s) or _prose_then_same_code(s, o) or is_output_header(s):
            continue
        if code_like[i] or _between_code(src, code_like, i) or _in_code_paragraph(src, code_like, i):
            return Difference(i + 1, f"code line changed: {_show(s)} -> {_show(o)}")
    return None


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


def _prose_then_same_code(source: str, translated: str) -> bool:
    """ "Rewrite this code: x = [1, 2]" -> "...: x = [1, 2]": words before a colon or question
    mark changed, and everything after it came through unchanged."""
    for m in re.finditer(r"[:?] ", source):
        head, tail = source[: m.start()], source[m.start() + 1 :]
        if tail.strip() and translated.endswith(tail):
            words = head.split()
            natural = [w for w in words if _NATURAL_WORD.match(w)]
            return len(natural) >= 2 and len(natural) >= 0.75 * len(words)
    return False


def _lost_token(source: str, translated: str) -> str | None:
    """The first code token of ``source`` found fewer times in ``translated`` than in the source.
    A token's word-character ends must stand free (``camelCase`` is not in ``camelCasean``);
    punctuation may touch it (translation moves commas and dashes about)."""
    counts = Counter(code_tokens(source))
    for token in code_tokens(source):
        lead = r"(?<![\w])" if token[0].isalnum() or token[0] == "_" else ""
        trail = r"(?![\w])" if token[-1].isalnum() or token[-1] == "_" else ""
        if len(re.findall(lead + re.escape(token) + trail, translated)) < counts[token]:
            return token
    return None


def output_lines(lines: list[str]) -> set[int]:
    """Indexes of program-output lines: the block right after an output header. After a blank
    line, a block that reads as prose is the text going on, not output."""
    found: set[int] = set()
    for i, line in enumerate(lines):
        if not is_output_header(line):
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        block = []
        while j < len(lines) and lines[j].strip() and not is_output_header(lines[j]):
            block.append(j)
            j += 1
        sentences = all(clearly_prose(lines[k]) and lines[k].rstrip()[-1:] in (".", "!", "?") for k in block)
        if block and (block[0] == i + 1 or not sentences):
            found.update(block)
    return found


def _in_code_paragraph(lines: list[str], code_like: list[bool], i: int) -> bool:
    """The run of non-blank lines around line ``i`` has a line that carries code."""
    first, last = i, i
    while first > 0 and lines[first - 1].strip():
        first -= 1
    while last + 1 < len(lines) and lines[last + 1].strip():
        last += 1
    return any(code_like[k] for k in range(first, last + 1) if k != i)


def _between_code(lines: list[str], code_like: list[bool], i: int) -> bool:
    """The nearest non-blank lines above and below carry code (an edge of the turn counts as
    agreeing with the other side, so the last line of a code block is judged by the block)."""
    up = next((code_like[j] for j in range(i - 1, -1, -1) if lines[j].strip()), None)
    down = next((code_like[j] for j in range(i + 1, len(lines)) if lines[j].strip()), None)
    if up is None and down is None:
        return False
    return (up is not False) and (down is not False)


def verify_turn(source: str, translated: str, *, translate_comments: bool = False) -> str | None:
    """A one-line description of the first code difference, or None."""
    found = first_difference(source, translated, translate_comments=translate_comments)
    return None if found is None else str(found)

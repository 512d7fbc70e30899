"""Split a turn into code, which must pass through byte for byte, and prose, which is translated.

Lines are classified one by one, then in context (a line between code lines is code unless it
clearly reads as prose):

* **fenced blocks** (``` and ~~~) and **indented blocks** after a blank line are code;
* a line is **code by its shape** when it opens or closes a block (``def``/``if ...:``, ``{``,
  ``}``, ``end``, ``fi``, ``public:``), is a statement (``;`` at the end, assignment, a bare call),
  starts with a keyword of a common language (Python, C family, Java, PHP, Ruby, shell, SQL
  clauses in capitals), is markup, a table row, a shell/REPL prompt, or is dense with characters
  only code uses;
* a line **reads as prose** when natural-language words make up most of it once inline code is
  set aside; every other line is judged by its neighbours: inside a paragraph that has code, or
  between code paragraphs, it is code;
* whole blocks are code: diffs/patches, stack traces, REPL and shell sessions with their output,
  and **program output** after "Output:", "Expected output", "prints:" and the like;
* a whole turn that Python parses as real code is code.

Inside prose, inline code is protected behind placeholders: `code`, URLs, paths and file names,
identifiers (snake_case, camelCase, ALL_CAPS, names with digits, dotted.names, calls()), quoted
literals, format placeholders, operator and bracket runs, numbers. Concatenating the spans always
gives back the turn exactly. docs/translation.md explains the choices and their measurements.
"""

from __future__ import annotations

import ast
import re
import tokenize
import warnings
from dataclasses import dataclass
from functools import lru_cache
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
_SHELL_WORDS = (
    r"sudo|pip3?|npm|npx|yarn|git|cd|ls|mkdir|rm|cp|mv|echo|export|curl|wget|docker|python3?|conda|"
    r"apt(?:-get)?|brew|chmod|chown|cat|grep|sed|awk|find|tar|ssh|scp|make|gcc|g\+\+|javac|java|node|"
    r"go|cargo|rustc|ruby|php|perl|kubectl|source|touch|head|tail|sort|uniq|wc|xargs|ps|kill|du|df|tee|"
    r"history|comm|diff|chmod|read|printf|exit|set|unset|alias|which|man|less|more|ln|zip|unzip"
)
_CODE_START = re.compile(
    rf"""^\s*(?:
        def\s+\w+[?!]?\s*[(:]?|class\s+\w+|import\s+[\w.{{*]|from\s+[\w.]+\s+import\b|return\b|yield\b|
        raise\b|(?:el)?if\b.*:\s*$|else\s*:|for\s.+\sin\s.+:\s*$|while\s.+:\s*$|try\s*:|except\b.*:\s*$|
        finally\s*:|with\s.+:\s*$|async\s+def\b|await\s|lambda\b|@[\w.]+|print\s*\(|assert\s|
        (?:pass|break|continue|end|fi|done|esac|then|do|else|elif|endif|endwhile|endfor|wend|loop|next|
           end\s+(?:if|sub|function|loop|while|module|class)|begin|rescue|ensure)\s*;?\s*$|
        \#\s*(?:include|define|ifn?def|endif|pragma|import)\b|\#!|<\?(?:php|=)?|\?>|
        (?:public|private|protected|internal)\s*:|
        (?:public|private|protected|static|final|abstract|virtual|override|internal|sealed|export|default)\s+\w|
        (?:function|func|fn|fun|sub|proc)\s+[\w$]+\s*[(<]|(?:const|let|var|val|auto|mut)\s+[\w$\[{{]+\s*[:=;,]|
        (?:(?:unsigned|signed|const|static|inline|extern)\s+)*
        (?:int|void|char|float|double|bool|boolean|long|short|unsigned|string|String|size_t|std::\w+)[\s*&]+[\w:]+\s*[(=;\[,]|
        for\s+\w+\s+in\s+\S|while\s+(?:IFS|read|true|\[|\(|:)|read\s+-|local\s+\w+=|
        console\.\w+\(|System\.\w+\.|package\s+[\w.]+;?\s*$|using\s+(?:namespace\s+)?[\w.]+;|
        namespace\s+\w|module\s+\w+|require(?:_once)?\s*[('"]|puts\s|echo\s|printf?\s*\(|
        (?:SELECT|FROM|WHERE|GROUP\s+BY|ORDER\s+BY|HAVING|(?:LEFT|RIGHT|INNER|OUTER|FULL|CROSS)\s+JOIN|JOIN|
           ON|AND|OR|LIMIT|OFFSET|VALUES|SET|UNION(?:\s+ALL)?|INSERT\s+INTO|UPDATE|DELETE\s+FROM|
           CREATE\s+(?:TABLE|INDEX|DATABASE|VIEW|PROCEDURE|FUNCTION|TRIGGER)|ALTER\s+TABLE|DROP\s+\w+|
           WITH\s+\w+\s+AS|CASE|WHEN|ELSE|END|BEGIN|DECLARE|RETURNS?|PRIMARY\s+KEY|FOREIGN\s+KEY|
           REFERENCES|COMMIT|ROLLBACK)(?:\s|$|;|\()|
        (?:if|while|for|foreach|switch|catch|using|lock|synchronized|fixed|with|else\s+if|elseif|unless|until)\s*[(\[]|\}}\s*else\b|
        (?:GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS)\s+/|[A-Z][a-z]+-[A-Z][A-Za-z]+(?:\s|$)|printf?\s|
        \$\s+\S|>>>(?:\s|$)|\.\.\.\s|(?:{_SHELL_WORDS})\s+[-\w./~"'$]
    )""",
    re.VERBOSE,
)
_CODE_SHAPE = re.compile(
    r"""(?:
        ^\s*[\w.$\[\]'"]+\s*(?:[-+*/%&|^.:]|//|\*\*|>>|<<|\?\?)?=(?!=)\s*\S|   # assignment
        ^\s*[\[{(].*[\]})],?\s*$|                                         # a bracketed literal
        [;{}\\]\s*$|;\s*(?:do|then)\s*$|(?:\s--?[A-Za-z][\w-]*){2,}|^\s*[})\]]|^\s*[\[({]\s*$|                              # statement ends, brackets
        ^\s*[\w$.]+(?:\.[\w$]+)*\(.*\)\s*[;,]?\s*$|                       # a bare call
        ^\s*["'][^"']*["']\s*[:=]|^\s*\w+\s*:\s*["'\[{\d]|                 # dict / JSON / YAML entries
        ^\s*</?[A-Za-z!][\w:-]*(?:\s[^<>]*)?/?>|^\s*<!--|-->\s*$|              # markup
        ^\s*\|.*\|\s*$|                                                    # table row
        ^\s*(?:\w+(?:\.\w+)*(?:Error|Exception|Warning)\b(?::.*)?|at\s+[\w$.<>]+\(.*\))$|  # trace lines
        ^\s*File\s+"[^"]+",\s+line\s+\d+|
        \w::\w|\s(?:<<|>>)\s|\$\(|\$\{|                                        # C++ streams, shell
        ^\s*[a-z][\w.-]*\s+--?[A-Za-z]|\S\s*\|\s*[a-z][\w-]*(?:\s|$)|               # flags, pipes
        ^\s*\w+\s+::\s|\|\w+(?:,\s*\w+)*\||                                   # signatures, block params
        \w<[\w?,\s\[\]]+>\s*\w|^\s*[\w<>\[\],.]+\s+\w+\s*=\s*\S|                  # generics, typed assignment
        ^\s*\w+(?:\s*,\s*\w+)+\s*=\s*\S|^\s*[a-z_]\w*(?:\s+[a-z_]\w*)+\s*=\s*\S    # tuple / equation
    )""",
    re.VERBOSE,
)
_SENTENCE_LIKE = re.compile(r"[A-Za-zА-Яа-яЁё]{2,}\s+[A-Za-zА-Яа-яЁё]{2,}\s+[A-Za-zА-Яа-яЁё]{2,}.*[.!?]$")
_NATURAL = re.compile(r"^[(\[\"'«“]*[A-Za-zА-Яа-яЁёÀ-ÿ][a-zа-яёà-ÿ'’\-]*[)\]\"'»”.,;:!?]*$")
_CODE_CHARS = re.compile(r"[{}\[\]<>=;$|&\\^~@]")
_OUTPUT_HEADER = re.compile(
    r"(?i)^[\s#*>_-]*(?:(?:expected|sample|example|program|console)\s+output\s*:?"
    r"|(?:\S+\s+){0,6}(?:output|outputs|stdout|prints?|printed|run|contents?)"
    r"(?:\s+(?:is|are|will\s+be|would\s+be|should\s+be))?\s*:)[\s*_]*$"
)
# A message a compiler, interpreter or program prints ("Parse error: syntax error, unexpected ';'",
# "TypeError: 'NoneType' object is not iterable"): quoted as it was printed, never translated.
# The words before the one naming it are capitalised as a program prints them ("PHP Fatal error");
# after it only a code ("Error 404:", "warning C4996:"): "Error handling: ..." is a sentence.
_ERROR_MESSAGE = re.compile(
    r"^\s*(?!(?:The|This|That|These|Those|An?|Your|My|Our|Its|One|Each|Every|Another|Main|First|Last"
    r"|Common|Typical|Possible|Potential|Logical|Second|Next|Other|Same)\s)"
    r"(?:[A-Z][A-Za-z]*\s){0,2}(?:[A-Z]\w*(?:Error|Exception|Warning)|[Ee]rror|ERROR|[Ww]arning|WARNING|[Ee]xception|EXCEPTION)"
    r"(?:\s+[A-Z]*\d\w*)?\s*:\s*\S"
)
_OUTPUT_INLINE = re.compile(r"(?i)^([\s#*>_-]*(?:expected\s+)?output\s*:\s*)(\S.*?)(\s*)$")
_COMMENT = re.compile(r"^\s*(?:#|//|/\*|\*/|--\s|<!--)")
_PLAIN_WORD = re.compile(r"[A-Za-z][a-z]*[.,:;!?]?")
_LABELLED_VALUE = re.compile(r"^[A-Za-z][\w -]{0,30}:\s+(\S.*)$")
_QUOTED_OR_TICKED = re.compile(r"`[^`\n]*`|\"[^\"\n]*\"|'[^'\n]*'")
_COLON = re.compile(r"[:?][ \t]+(?=\S)")
_DOCSTRING_OPEN = re.compile(r"^\s*[rRuU]?(?:\"\"\"|\'\'\')")
_DIFF_START = re.compile(r"^(?:diff --git |--- (?:a/|\S+\s)|\+\+\+ (?:b/|\S)|@@ -\d)")
_DIFF_LINE = re.compile(r"^(?:[ +\-@\\]|diff |index |new file|deleted file|similarity|rename)")
_TRACE_START = re.compile(r"^\s*(?:Traceback \(most recent call last\):|Exception in thread )")


def is_python(text: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes in the text's strings are not our news
            tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    for node in tree.body:
        # A lone name or constant parses too ("Hello", "42"), and so do words with commas
        # ("apples, pears"): that is not code.
        value = node.value if isinstance(node, ast.Expr) else None
        if isinstance(value, ast.Name | ast.Constant) or (
            isinstance(value, ast.Tuple) and all(isinstance(e, ast.Name) for e in value.elts)
        ):
            continue
        return True
    return False


def _without_inline_code(text: str) -> str:
    return _INLINE.sub(" ", text)


@lru_cache(maxsize=1 << 16)
def reads_as_prose(line: str) -> bool:
    """Natural-language words make up the line once inline code is set aside: three or more on
    their own (five, or a sentence ending), two around inline code."""
    body = _MD_PREFIX.sub("", line.strip(), count=1).strip()
    if not body or re.search(r"[;{}\\]\s*$", body):
        return False
    rest = _without_inline_code(body)
    # Comment markers and punctuation do not make a line "prose around code"; code with letters does.
    had_code = any(
        any(ch.isalpha() for ch in m.group(0)) and m.lastgroup not in ("number", "symbols")
        for m in _INLINE.finditer(body)
    )
    # Numbers and single letters ("x", "C") are neutral.
    parts = [p for p in rest.split() if sum(c.isalpha() for c in p) >= 2 or p in ("a", "A", "I")]
    words = [p for p in parts if _NATURAL.match(p) and (sum(c.isalpha() for c in p) >= 2 or p in "aAI")]
    if len(words) < 0.75 * len(parts):
        return False
    kinds = {m.lastgroup for m in _INLINE.finditer(body) if m.lastgroup not in ("number", "symbols")}
    if kinds == {"code"} and len(words) >= 2:
        return True  # the author marked the code with backticks: the rest is the sentence
    if len(words) < 3:
        return False
    # A sentence starts like one (capital, quote, bracket) or runs long; code keeps its lower-case
    # words ("for file in $dir", "ls | wc -l", "std::cout << x").
    if not (body[:1].isupper() or body[:1] in "\"'“«(`" or len(words) >= 6):
        return False
    if had_code:
        return sum(len(w) for w in words) >= 0.4 * (len(body) - body.count(" "))
    return len(words) >= 5 or body[-1] in ".!?:"


def _is_sentence(line: str) -> bool:
    return reads_as_prose(line) and line.rstrip()[-1:] in (".", "!", "?")


_TRAILING_COMMENT = re.compile(r"^(\s*\S.*?(?:[;{}\])]|\+\+|--))\s+(?://|#)\s")
_SQL_LOWER = re.compile(
    r"^\s*(?:select\s+\S.*\sfrom\s+\w|insert\s+into\s+\w|update\s+\w+\s+set\s|delete\s+from\s+\w|"
    r"(?:from|where|group\s+by|order\s+by|having|(?:inner\s+|left\s+|right\s+)?join)\s+\w)"
)
_ARTICLE = re.compile(r"(?i)\b(?:the|an?|your|this|these|those)\b")
_MAPPING_LINE = re.compile(r"^\s*(?:-\s+)?[a-z_][\w-]*:\s+\S")
_ONE_LITERAL = re.compile(r"""^\s*(["'])[^"'\n]{20,}\1\s*[,;]?\s*$""")


@lru_cache(maxsize=1 << 16)
def is_code_line(line: str) -> bool:
    """Code by its own shape, whatever surrounds it."""
    stripped = line.strip()
    if not stripped:
        return False
    head = _TRAILING_COMMENT.match(line)
    if head and _is_code_shape(head.group(1)):
        return True  # "server.listen(8080); // The server listens": code with its comment
    if re.fullmatch(r"""[rRuU]?(\"\"\"|\'\'\').*\1""", stripped):
        return True  # a one-line docstring
    if re.fullmatch(r"[A-Za-z]", stripped):
        return True  # a one-letter answer or value: "A", "c"
    if (_SQL_LOWER.match(line) and not _ARTICLE.search(stripped)) or _ONE_LITERAL.match(line):
        return True
    if _MAPPING_LINE.match(line) and not reads_as_prose(line):
        return True  # "name: my build job", "  - uses: actions/checkout@v3"
    return _is_code_shape(line)


def _is_code_shape(line: str) -> bool:
    stripped = line.strip()
    if _CODE_START.match(line) or _CODE_SHAPE.search(line):
        # "Select the rows you need." starts like code but reads like a sentence; code keywords are
        # lower case, so a line that starts with one is code.
        sentence = stripped[:1].isupper() and _SENTENCE_LIKE.search(stripped) and reads_as_prose(line)
        return not (sentence and not is_python(stripped))
    if " " not in stripped and re.search(r"\w[._(),=\[\]{}<>$@;:/\\\"'?!]+\w|[()\[\]{};*~]", stripped):
        return not re.fullmatch(r"[A-Za-z]+[.,:!?]?|\d+[.)]", stripped)  # "Example:", "3." are not
    if not re.search(r"[^\W\d_]", _without_inline_code(stripped)) and re.search(r"[^\W\d_]", stripped):
        return True  # nothing but inline code: "file1.txt file2.txt - output.txt"
    latin_only = re.search(r"[A-Za-z]", stripped) and not re.search(r"[\u0400-\u04ff]", stripped)
    tokens = stripped.replace("\ufeff", "").replace("\x00", "").split()  # stray BOM/NUL are not code
    if latin_only and not any(_PLAIN_WORD.fullmatch(token) for token in tokens):
        return True  # not one plain word to translate: 'Bob,30,San Francisco")', "x=1 y=2"
    inline = sum(
        len(m.group(0)) for m in _INLINE.finditer(stripped) if m.lastgroup not in ("number", "symbols")
    )
    if inline >= 0.3 * len(stripped.replace(" ", "")) and not reads_as_prose(line):
        return True  # mostly inline code with a word or two: "Use sorted().", "HTML file: 'a.html'"
    label = _LABELLED_VALUE.match(stripped)
    if label and re.search(r"['\"\[{(\d@]", label.group(1)) and not reads_as_prose(label.group(1)):
        return True  # "Date 1: '2022-01-01'", "orders: id, customer_id": data, not prose
    rest = _QUOTED_OR_TICKED.sub(" ", stripped)
    chars = len(stripped.replace(" ", ""))
    return chars >= 4 and len(_CODE_CHARS.findall(rest)) >= max(2, 0.12 * chars) and not reads_as_prose(line)


def is_code_document(text: str) -> bool:
    """A whole turn that is code without fences: Python that parses and has at least one real
    statement, or text whose non-blank lines are all code once judged in context."""
    return _whole_code(text, text.splitlines(keepends=True), None)


def _whole_code(text: str, lines: list[str], labels: list[str] | None) -> bool:
    first = next((ln for ln in lines if ln.strip()), None)
    if first is None or _FENCE.match(first):
        return False
    if is_python(text):
        return True
    labels = _label_lines(lines) if labels is None else labels
    return all(label != "prose" for label in labels) and any(label == "code" for label in labels)


def _is_short_value(line: str) -> bool:
    """One or two words (three in lower case) with no sentence end, colon, list mark or heading
    mark ("Hello World", "Abstract Factory", "bubble sort algorithm"): a value, a name or a line
    a program prints, not a sentence. Kept as it is."""
    body = line.strip()
    words = len(body.split())
    return (
        (0 < words <= 2 or (words == 3 and body[0].islower() and body[-1] != ","))
        and body[-1] not in ".!?:"
        and not _MD_PREFIX.match(line).group(1).strip()
    )


_LABEL_AND_VALUE = re.compile(r"^[A-Z][\w ]{0,30}:[ \t]+(\S.*)$")


def _is_labelled_value(line: str) -> bool:
    """A label and a value of at most three words with no sentence end ("Name: John Doe",
    "State: Texas", "Output: 5"): a record of the task's data, kept whole."""
    body = line.strip()
    body = body[len(_MD_PREFIX.match(body).group(1)) :]
    m = _LABEL_AND_VALUE.match(body)
    return bool(m) and len(m.group(1).split()) <= 3 and m.group(1)[-1] not in ".!?"


_STATEMENT_AND_REMARK = re.compile(r"^\s*(?:(?:\d{1,3}[.)]|[-*+])\s+)?(\S.*?;)\s+\(.*\)[.,;]?\s*$")


def _statement_with_remark(line: str) -> bool:
    """A statement and a remark on it in brackets ("2. int y = x * 2; (y is twice x)"): the line
    is a line of the program as the task shows it, remark and all."""
    m = _STATEMENT_AND_REMARK.match(line)
    return (
        bool(m)
        and bool(re.search(r"[=()\[\]{}.<>+*/-]|^\s*(?:return|break|continue)\b", m.group(1)))
        and is_code_line(m.group(1))
        and not reads_as_prose(m.group(1))
    )


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _block_end(lines: list[str], start: int, keep) -> int:  # keep: Callable[[str], bool]
    j = start
    while j < len(lines) and lines[j].strip() and keep(lines[j]):
        j += 1
    return j


def _label_lines(lines: list[str], values: bool = True) -> list[str]:
    """'code', 'prose' or 'blank' for every line."""
    n = len(lines)
    labels: list[str | None] = [None] * n
    i = 0
    while i < n:  # blocks that are code whatever their lines look like
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            marker = fence.group(1)
            j = i + 1
            while j < n and not re.match(rf"^[ \t]{{0,3}}{marker[0]}{{{len(marker)},}}\s*$", lines[j]):
                j += 1
            for k in range(i, min(j, n - 1) + 1):
                labels[k] = "fenced"
            i = j + 1
            continue
        if line.lstrip().startswith("/*"):
            j = i
            while j < n and "*/" not in (lines[j].lstrip()[2:] if j == i else lines[j]):
                j += 1
            j = min(j + 1, n)  # a block comment, its " * " lines and its closing line
        elif _DOCSTRING_OPEN.match(line) and len(re.findall(r'"""|\'\'\'', line)) == 1:
            j = i + 1
            while j < n and not re.search(r'"""|\'\'\'', lines[j]):
                j += 1
            j = min(j + 1, n)  # a docstring, whether or not the code around it parses
        elif _DIFF_START.match(line):
            j = _block_end(lines, i + 1, lambda ln: bool(_DIFF_LINE.match(ln)))
        elif _TRACE_START.match(line) or re.match(r"^\s*(?:>>>|\$)\s", line):
            j = _block_end(lines, i + 1, lambda ln: True)
        elif _OUTPUT_HEADER.match(re.split(r"(?<=[.!?])\s+", line.strip())[-1]):  # may end a sentence
            above = next((m for m in range(i - 1, -1, -1) if lines[m].strip()), None)
            # "# Output:" after unfenced code is that code's comment: a comment line is not translated
            # unless comments are; the output below it stays output either way.
            code_comment = (
                bool(re.match(r"^\s*(?:#|//)", line))
                and above is not None
                and labels[above] != "fenced"
                and is_code_line(lines[above])
            )
            labels[i] = "code" if code_comment else "prose"
            k = i + 1
            while k < n and not lines[k].strip():
                k += 1
            j = _block_end(lines, k, lambda ln: not _OUTPUT_HEADER.match(ln))
            # After a blank line, sentences are the text going on; anything else is output.
            if j > k and (k == i + 1 or not all(_is_sentence(lines[m]) for m in range(k, j))):
                for m in range(k, j):
                    labels[m] = "output"
            i = max(j, i + 1)
            continue
        else:
            i += 1
            continue
        for k in range(i, j):
            labels[k] = "code"
        i = j

    kinds: list[str] = []
    for i, line in enumerate(lines):
        if labels[i] in ("output", "fenced"):
            kinds.append("code")
        elif labels[i]:
            kinds.append(labels[i])
        elif not line.strip():
            kinds.append("blank")
        elif is_code_line(line) or _statement_with_remark(line) or _ERROR_MESSAGE.match(line):
            kinds.append("code")
        elif re.match(r"^\s*(?://|<!--)", line):
            kinds.append("code")  # never Markdown: a comment line of code
        elif _COMMENT.match(line):
            kinds.append("other")  # a comment in code, or a heading in prose: the context decides
        elif values and (_is_short_value(line) or _is_labelled_value(line)):
            kinds.append("code")
        elif reads_as_prose(line):
            kinds.append("prose")
        elif line.startswith(("    ", "\t")) and (i == 0 or kinds[i - 1] in ("blank", "code")):
            kinds.append("code")  # an indented block
        elif i and kinds[i - 1] == "prose" and not lines[i - 1].rstrip().endswith((".", "!", "?", ":")):
            kinds.append("prose")  # the sentence of the line above goes on
        else:
            kinds.append("other")

    # Paragraphs (runs of non-blank lines) that hold code make their undecided lines code.
    paragraphs: list[list[int]] = []
    for i, kind in enumerate(kinds):
        if kind == "blank":
            continue
        if paragraphs and paragraphs[-1][-1] == i - 1:
            paragraphs[-1].append(i)
        else:
            paragraphs.append([i])
    # A fenced block speaks for itself: it does not pull the text around it into code.
    has_code = [any(kinds[i] == "code" and labels[i] != "fenced" for i in para) for para in paragraphs]
    for p, para in enumerate(paragraphs):
        between = 0 < p < len(paragraphs) - 1 and has_code[p - 1] and has_code[p + 1]
        # At either end of the turn, the one neighbouring paragraph decides.
        edge = (p == 0 and len(paragraphs) > 1 and has_code[1]) or (
            p == len(paragraphs) - 1 and p > 0 and has_code[p - 1]
        )
        for i in para:
            if kinds[i] == "other":
                kinds[i] = "code" if has_code[p] or between or edge else "prose"
    # A line indented under a code line is inside that line's block (a loop's body, the text of an
    # HTML element, a step of pseudocode), whatever it reads like.
    # A value kept as code ("Step 1: Install Python") opens no block unless code is around it.
    paragraph_of = {i: p for p, para in enumerate(paragraphs) for i in para}
    code_lines = [sum(kinds[k] == "code" for k in para) for para in paragraphs]
    shallower: list[int] = []  # lines above, each less indented than the one after it: the openers
    for i, kind in enumerate(kinds):
        if not lines[i].strip():
            continue
        width = _indent(lines[i])
        while shallower and _indent(lines[shallower[-1]]) >= width:
            shallower.pop()
        opener = shallower[-1] if shallower else None
        shallower.append(i)
        if kind != "prose" or labels[i] is not None or not width:
            continue
        if opener is None or kinds[opener] != "code" or labels[opener] in ("fenced", "output"):
            continue
        value = not is_code_line(lines[opener]) and (
            _is_short_value(lines[opener]) or _is_labelled_value(lines[opener])
        )
        if not value or code_lines[paragraph_of[opener]] > 1:  # code besides the value itself
            kinds[i] = "code"
    # The verifier's view of the same: a run of indented lines held tight between code lines, each
    # at least as deep as the shallower of them, is inside their block.
    i = 1
    while i < n - 1:
        last = i
        while last < n and kinds[last] == "prose" and labels[last] is None and _indent(lines[last]):
            last += 1
        if last == i:
            i += 1
            continue
        up, down = i - 1, last
        if (
            down < n
            and kinds[up] == kinds[down] == "code"
            and lines[up].strip()
            and lines[down].strip()
            and labels[up] != "fenced"
            and labels[down] != "fenced"
            and all(
                _indent(lines[k]) >= min(_indent(lines[up]), _indent(lines[down])) for k in range(i, last)
            )
        ):
            kinds[i:last] = ["code"] * (last - i)
        i = last
    # Blank lines inside a code run belong to the code.
    for i, kind in enumerate(kinds):
        if kind == "blank":
            up = next((kinds[j] for j in range(i - 1, -1, -1) if kinds[j] != "blank"), None)
            down = next((kinds[j] for j in range(i + 1, n) if kinds[j] != "blank"), None)
            if up == "code" and down == "code":
                kinds[i] = "code"
    return kinds


_TICKED_SPAN = re.compile(r"(?<!`)(`+)(?!`).+?(?<!`)\1(?!`)")


def _split_prose_line(line: str, values: bool = True) -> list[Span]:
    body = line.rstrip("\r\n")
    newline = line[len(body) :]
    inline = _OUTPUT_INLINE.match(body)
    if inline:  # "Output: 42": the label is prose, the value is program output
        return [
            *_split_prose_line(inline.group(1), values),
            Span("code", inline.group(2)),
            Span("raw", inline.group(3) + newline),
        ]
    ticked = [(m.start(), m.end()) for m in _TICKED_SPAN.finditer(body)]
    # a colon inside inline code ("``{'x': 1}``") is the code's, not the sentence's
    colon = next((m for m in _COLON.finditer(body) if not any(a <= m.start() < b for a, b in ticked)), None)
    quotes = re.findall(r"\"|(?<![A-Za-z])'|'(?![A-Za-z])", body[: colon.start()]) if colon else []
    if quotes.count('"') % 2 or quotes.count("'") % 2:
        colon = None  # a colon inside a quoted literal: "the format 'Name: Count'"
    if colon and re.search(r"[A-Za-z]", body[: colon.start()]) and body[colon.end() :].strip():
        head, tail = body[: colon.end()], body[colon.end() :]
        code = tail.strip("'\"` ")
        # Code after the colon, a short value ("the output: Hello World"), or nothing but inline
        # code ("is: '1, 3, 5'"): the sentence is translated, the rest of the line kept.
        only_inline = not re.search(r"[^\W\d_]", _without_inline_code(tail))
        if (
            (is_code_line(code) and not reads_as_prose(code))
            or _ERROR_MESSAGE.match(code)
            or (values and (_is_short_value(code) or only_inline))
        ):
            # "Translate the following C++ code: #include <iostream>": prose, then code on the line
            return [*_split_prose_line(head, values), Span("code", tail + newline)]
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


def segment(text: str, *, values: bool = True) -> list[Span]:
    """Spans of a turn; ``"".join(s.text for s in segment(t)) == t`` always holds. ``values``:
    short values and labelled values ("Hello World", "Name: John Doe") are code, which is what
    translation needs; normalizing text asks for False (they get the prose's Unicode form), and
    so does ``dataset_builder.api.code_blocks`` (a value is not code)."""
    lines = text.splitlines(keepends=True)
    labels = _label_lines(lines, values)
    if _whole_code(text, lines, labels):
        return [Span("code", text)]
    spans: list[Span] = []
    for line, kind in zip(lines, labels, strict=True):
        if kind == "code":
            spans.append(Span("code", line))
        elif kind == "blank":
            spans.append(Span("raw", line))
        else:
            spans.extend(_split_prose_line(line, values))
    return _merge(spans)


def _merge(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for span in spans:
        if not span.text:
            continue
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
    (?P<error>(?<![\w'"`])(?P<eq>['"])[A-Z]\w*(?:Error|Exception|Warning):[^\n]*(?P=eq)(?![\w'"`]))|
    (?P<list>\[\s*(?:[-+]?\d[\d.]*|'[^'\n]*'|"[^"\n]*")(?:\s*,\s*(?:[-+]?\d[\d.]*|'[^'\n]*'|"[^"\n]*"))*\s*\])|
    (?P<url>\b(?:https?|ftp)://[^\s<>"'`]+[^\s<>"'`.,;:!?)\]])|
    (?P<call>\b[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*[?!]?\([^()\n]{0,80}\))|
    (?P<path>(?:~|\.{1,2})/[\w.\-]+(?:/[\w.\-]+)*|(?<![\w/])/[\w.\-]+(?:/[\w.\-]+)+|\b[A-Za-z]:\\[\w.\-\\]+|\b[\w\-]+(?:/[\w.\-]+)+\.\w+|
        \b[\w\-]+\.(?:py|pyi|ipynb|txt|csv|tsv|json|jsonl|md|rst|js|ts|jsx|tsx|html|css|sh|yml|yaml|toml|cfg|ini|
        sql|java|cpp|cc|hpp|c|h|rb|go|rs|php|xml|log|env|lock|zip|gz|tar|parquet|pkl|db|sqlite|png|jpg|pdf)\b)|
    (?P<placeholder>\{[\w.\[\]:!<>^=+\-#,%]*\}|%[-+0\#]*\d*(?:\.\d+)?[sdifrxXoeEgGc]\b|\$\{?\w+\}?)|
    (?P<quoted>(?<![\w'"`])(?:"[^"\n]{1,80}"|'(?:[^'\n]|(?<=\w)'(?=\w)){1,80}')(?![\w'"`]))|
    (?P<flag>(?<!\S)--?[A-Za-z][\w-]*)|
    (?P<kwarg>\b[A-Za-z_]\w*=(?:"[^"\n]{0,80}"|'[^'\n]{0,80}'|[\w.()\[\]]+))|
    (?P<dotted>\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+\b(?<!\be\.g)(?<!\bi\.e)(?<!\betc))|
    (?P<ident>\b_*[A-Za-z]\w*_\w*\b|\b__\w+__\b|\b[a-z]+[A-Z]\w*\b|\b[A-Z][a-z0-9]+[A-Z]\w*\b|\b[A-Z]{2,}[a-z]+\w*\b|
        \b[A-Z][A-Z0-9]*[A-Z][A-Z0-9]*\b|\b[A-Za-z]+\d\w*\b|\b\d+[A-Za-z]\w*\b)|
    (?P<symbols>[^\w\s`'"]*(?:[=<>{}\[\]|&^~$@\\+]|\(\)|//|::|->)[^\w\s`'"]*|[^\w\s`'"]*;[^\w\s`'"]+|[^\w\s`'"]+;[^\w\s`'"]*|
        \**[^\w\s*`'"]+\*+[^\w\s`'"]*|\*+[^\w\s*`'"]+)|
    (?P<number>(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?%?(?![\w]))
    """,
    re.VERBOSE,
)

PLACEHOLDER = "\u27e6{}\u27e7"  # ⟦n⟧: never in real text, copied through by the model or caught missing
_PLACEHOLDER_RE = re.compile("\u27e6(\\d+)\u27e7")


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _glued(left: str, right: str) -> bool:
    """Would ``left + right`` merge a code span into a neighbouring word?"""
    if not left or not right:
        return False
    a, b = left[-1], right[0]
    return ((_is_word_char(a) or a in "'\"") and _is_word_char(b)) or (_is_word_char(a) and b in "'\"")


def join_around_code(pieces: list[tuple[str, bool]], source: list[str] | None = None) -> str:
    """Join ``(text, is_code)`` pieces, with a space where a translated piece would glue itself to
    a code piece (`camelCase` + "an" must not become `camelCasean`). ``source``: the pieces before
    translation; where they were glued already (`JavaScript's`), they stay glued."""
    out = ""
    for k, (text, is_code) in enumerate(pieces):
        touches_code = is_code or (k > 0 and pieces[k - 1][1])
        glued_before = source is not None and k > 0 and _glued(source[k - 1], source[k])
        out += " " + text if touches_code and _glued(out, text) and not glued_before else text
    return out


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
        glued_in_source = {
            m.group(1): (
                m.start() > 0 and _is_word_char(self.text[m.start() - 1]),
                m.end() < len(self.text) and _is_word_char(self.text[m.end()]),
            )
            for m in _PLACEHOLDER_RE.finditer(self.text)
        }
        if sorted(_PLACEHOLDER_RE.findall(translated)) != wanted or (
            self.text.strip() and not translated.strip()
        ):
            return None

        def put_back(m: re.Match[str]) -> str:
            # The model may glue a word to a placeholder ("⟦0⟧an"): a space keeps the code a token
            # of its own (`camelCase an`, not `camelCasean`).
            span = self.spans[int(m.group(1))]
            before = translated[m.start() - 1] if m.start() else " "
            after = translated[m.end()] if m.end() < len(translated) else " "
            lead = " " if _is_word_char(before) and _is_word_char(span[0]) else ""
            trail = " " if _is_word_char(span[-1]) and _is_word_char(after) else ""
            if span[:1] in "'\"" and _is_word_char(before):
                lead = " "
            if span[-1:] in "'\"" and _is_word_char(after):
                trail = " "
            # A word the source itself glued to its code (`_name.attr`) stays glued.
            glued_left, glued_right = glued_in_source[m.group(1)]
            lead = "" if glued_left else lead
            trail = "" if glued_right else trail
            return f"{lead}{span}{trail}"

        return _PLACEHOLDER_RE.sub(put_back, translated)

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


_CHUNK = re.compile(r"[^\s(\[\"'«“‘*_]\S*")
_CHUNK_TAIL = re.compile(r"(?:['’]s)?[)\]\"'»”’.,;:!?*_]*$")
_PLAIN = re.compile(
    r"[A-Za-zÀ-ÿ]+(?:['’\-/][A-Za-zÀ-ÿ0-9]+)*|[-+]?[\d.,:%]+|[-–—/_]+|#{1,6}|>+|(?:[A-Za-z]\.){1,3}"
)


def _glued_code(prose: str) -> list[tuple[int, int]]:
    """Words glued to code characters (``C++``, ``C#``, ``x++``, ``i<nums.length``, ``.txt``,
    ``r^2``): the whole run is code, not just its symbols."""
    found = []
    for m in _CHUNK.finditer(prose):
        chunk = m.group(0)
        core = chunk[: len(chunk) - len(_CHUNK_TAIL.search(chunk).group(0))]
        if core and re.search(r"[A-Za-z]", core) and not _PLAIN.fullmatch(core):
            found.append((m.start(), m.start() + len(core)))
    return found


# An operator standing between spaces binds its operands: "i <= n", "x > 5", "a + b" are one
# expression. Comparisons and compound operators bind any word; the others only names and numbers
# (a word around a lone "=" or "+" may be prose: "Use + to add").
_BINDING_OPERATOR = re.compile(
    r"(?<!\S)(?:(?P<strong>===?|!==?|<=|>=|&&|\|\||[-+*/%]=|=>|->|<<|>>)|(?P<weak>[<>=+*%]))(?!\S)"
)
_OPERAND_LEFT = re.compile(r"[^\s(]\S*[ \t]$")
_OPERAND_RIGHT = re.compile(r"^[ \t]\S*[^\s.,;:!?)]")
_SHORT_OPERAND = re.compile(r"[A-Za-z]|.*[^A-Za-z].*")  # a letter, a number or a name, not a word
# A bracketed run in prose ("[a, b, c]", "{name: 'Bob', age: 30}", "Map<Character, Integer>") is
# one piece of code, whole.
_BRACKETED = re.compile(r"\[[^\[\]\n]{1,80}\]|\{[^{}\n]{1,80}\}|\b[A-Za-z_][\w.]*<[\w\s,.?\[\]]{1,60}>")


# A quotation over 80 characters is a sentence quoted, unless it holds code characters or flags
# (a quoted shell command): then it is code, whole.
_LONG_QUOTED = re.compile(r"""(?<![\w'"`])(?:"[^"\n]{81,400}"|'[^'\n]{81,400}')(?![\w'"`])""")


# String delimiters named in prose ("use triple quotes ''' or \"\"\""): the code a reader types.
_TRIPLE_QUOTES = re.compile(r"""(?<![\w'"`])(?:'''|\"\"\")(?![\w'"`])""")


def _expressions(prose: str) -> list[tuple[int, int]]:
    found = [(m.start(), m.end()) for m in _BRACKETED.finditer(prose)]
    found += [
        (m.start(), m.end())
        for m in _LONG_QUOTED.finditer(prose)
        # one token quoted (no space inside) is a literal, not a sentence, however long
        if _CODE_CHARS.search(m.group(0)[1:-1])
        or re.search(r"(?<!\S)--?[A-Za-z]", m.group(0))
        or not re.search(r"\s", m.group(0))
    ]
    found += [(m.start(), m.end()) for m in _TRIPLE_QUOTES.finditer(prose)]
    for m in _BINDING_OPERATOR.finditer(prose):
        # The operator is code whatever stands around it; each operand on its own terms.
        left = _OPERAND_LEFT.search(prose[: m.start()])
        right = _OPERAND_RIGHT.match(prose[m.end() :])
        binds = m.group("strong") is not None
        start = (
            left.start() if left and (binds or _SHORT_OPERAND.fullmatch(left.group(0).strip())) else m.start()
        )
        end = (
            m.end() + right.end()
            if right and (binds or _SHORT_OPERAND.fullmatch(right.group(0).strip()))
            else m.end()
        )
        found.append((start, end))
    return found


_QUOTE_OPENING = re.compile(r"""(?<![\w'"`])(['"])(?=\S)""")
_HOLDS_CODE = re.compile(r"\w\(|[=\[\]{}]")


def _quoted_code(prose: str) -> list[tuple[int, int]]:
    """A quotation with quotes inside it ("'with open(f, 'w') as out'"): it ends at the first
    quote of its kind after which the quotes inside pair up and the brackets close. Code, whole,
    when it holds a call, an assignment or brackets."""
    found: list[tuple[int, int]] = []
    taken = 0
    for m in _QUOTE_OPENING.finditer(prose):
        start, quote = m.start(), m.group(1)
        if start < taken:
            continue
        for close in range(start + 2, min(len(prose), start + 400)):
            after = prose[close + 1 : close + 2]
            if prose[close] != quote or (after and not after.isspace() and after not in ".,;:!?)"):
                continue
            inner = prose[start + 1 : close]
            if inner.count(quote) % 2 or any(inner.count(a) != inner.count(b) for a, b in ("()", "[]", "{}")):
                continue
            if quote in inner and _HOLDS_CODE.search(inner):
                found.append((start, close + 1))
                taken = close + 1
            break
    return found


def protect(prose: str) -> Protected:
    ranges = sorted(
        [(m.start(), m.end()) for m in _INLINE.finditer(prose)]
        + _glued_code(prose)
        + _expressions(prose)
        + _quoted_code(prose)
    )
    merged: list[list[int]] = []
    for start, end in ranges:
        # Code spans with only spaces between them are one piece of code ("#include <iostream>",
        # "Map<Character, Integer>"): a model must not move them apart or put words between.
        if merged and (start < merged[-1][1] or not prose[merged[-1][1] : start].strip(" \t")):
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    spans: list[str] = []
    out, pos = [], 0
    for start, end in merged:
        out.append(prose[pos:start])
        spans.append(prose[start:end])
        out.append(PLACEHOLDER.format(len(spans) - 1))
        pos = end
    out.append(prose[pos:])
    return Protected("".join(out), tuple(spans))

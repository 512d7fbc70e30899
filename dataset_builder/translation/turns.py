"""One turn on its way through translation: cut into code and prose (the task's input and bare
values kept whole, comments split out when the recipe translates them), each prose span planned as
sentences behind placeholders, then put back together from the translations."""

from __future__ import annotations

import unicodedata

from dataset_builder.translation.segment import (
    Protected,
    Span,
    is_python,
    join_around_code,
    protect,
    python_prose,
    segment,
)
from dataset_builder.translation.sentences import join_sentences, split_sentences
from dataset_builder.translation.verify import is_bare_value


class Turn:
    """One turn being translated: its spans, and for each prose span its sentence plan."""

    def __init__(self, text: str, translate_comments: bool, language: str, data_lines: int = 0) -> None:
        self.source = text
        self.data_lines = data_lines
        # A turn of bare values (`True`, `average`) is an answer's value: it is never translated.
        head, data = ("", text) if is_bare_value(text) else _split_data(text, data_lines)
        self.spans = segment(head) if head else []
        if translate_comments:
            self.spans = _split_comments(self.spans)
        if data:
            self.spans.append(Span("code", data))
        self.plans: dict[int, tuple[Protected, list[str], list[str]]] = {}
        for i, span in enumerate(self.spans):
            if span.kind == "prose":
                protected = protect(span.text)
                sentences, gaps = split_sentences(protected.text, language)
                self.plans[i] = (protected, sentences, gaps)
        # The prose without its inline code, before and (set by assemble) after translation: what
        # the language and length checks look at.
        self.source_prose = "\n".join(_without_code(span.text, self.plans[i][0]) for i, span in self._prose())
        self.translated_prose = ""

    def _prose(self) -> list[tuple[int, Span]]:
        return [(i, span) for i, span in enumerate(self.spans) if i in self.plans]

    def sentences(self) -> list[str]:
        return [s for _, sentences, _ in self.plans.values() for s in sentences]

    def assemble(self, done: dict[str, str], retry: dict[str, str] | None) -> tuple[str, int]:
        """The translated turn, and how many sentences had to be retried piece by piece."""
        parts, retried, prose = [], 0, []
        for i, span in enumerate(self.spans):
            if i not in self.plans:
                parts.append(span.text)
                continue
            protected, sentences, gaps = self.plans[i]
            out = []
            for sentence in sentences:
                local = Protected(sentence, protected.spans)
                restored = local.restore(done.get(sentence, ""))
                if restored is None:
                    retried += 1
                    fragments = local.fragments()
                    restored = join_around_code(
                        [
                            (piece, True)
                            if is_code
                            else (_keep_edges(piece, (retry or {}).get(piece.strip(), piece.strip())), False)
                            for piece, is_code in fragments
                        ],
                        [piece for piece, _ in fragments],
                    )
                out.append(restored)
            translated = join_sentences(out, [_restore_gap(g, protected) for g in gaps])
            if any(bad in translated for bad in span.forbid):
                # A translated comment or docstring that would break its code keeps its source text.
                translated = span.text
            parts.append(translated)
            prose.append(_without_code(translated, protected))
        self.translated_prose = "\n".join(prose)
        return "".join(parts), retried

    def retry_pieces(self, done: dict[str, str]) -> list[str]:
        pieces = []
        for protected, sentences, _ in self.plans.values():
            for sentence in sentences:
                local = Protected(sentence, protected.spans)
                if local.restore(done.get(sentence, "")) is None:
                    pieces.extend(p.strip() for p, is_code in local.fragments() if not is_code and p.strip())
        return pieces


def _split_data(text: str, data_lines: int) -> tuple[str, str]:
    """``(head, data)``: the turn before its last ``data_lines`` lines, and those lines (data is
    never sent to the translator); ``(text, "")`` when there are none."""
    lines = text.split("\n")
    if not 0 < data_lines <= len(lines):
        return text, ""
    data = "\n".join(lines[len(lines) - data_lines :])
    return text[: len(text) - len(data)], data


def data_lines_of(turn: str, data: str | None) -> int:
    """How many lines at the end of ``turn`` are the task input ``data``; 0 when the turn does not
    end with it (an earlier stage may have stripped spaces or normalized its Unicode, nothing more)."""
    if not data or not data.strip():
        return 0
    wanted = [unicodedata.normalize("NFC", line).rstrip() for line in data.strip("\n").split("\n")]
    lines = turn.split("\n")
    blank_end = len(lines) - len("\n".join(lines).rstrip().split("\n"))  # kept by an earlier stage
    end = len(lines) - blank_end
    if len(wanted) > end:
        return 0
    got = [unicodedata.normalize("NFC", line).rstrip() for line in lines[end - len(wanted) : end]]
    return len(wanted) + blank_end if got == wanted else 0


def _without_code(text: str, protected: Protected) -> str:
    for code in protected.spans:
        text = text.replace(code, " ")
    return text


def _restore_gap(gap: str, protected: Protected) -> str:
    """Gaps between sentences are whitespace, or rarely a span pysbd left between sentences."""
    restored = Protected(gap, protected.spans).restore(gap)
    return restored if restored is not None else gap


def _keep_edges(piece: str, translated: str) -> str:
    if not piece.strip():  # only the space between two code spans: nothing was translated
        return piece
    lead = piece[: len(piece) - len(piece.lstrip())]
    trail = piece[len(piece.rstrip()) :]
    return f"{lead}{translated}{trail}"


def _python_body(code: str) -> tuple[int, str] | None:
    """``(offset, body)`` of the Python in a code span (a fenced block's inside, or the span),
    or None when it is not Python that parses: comments are only translated where the language
    is known, since ``#`` starts a comment in Python but a directive in C."""
    lines = code.splitlines(keepends=True)
    if lines and lines[0].lstrip().startswith(("```", "~~~")):
        info = lines[0].strip().lstrip("`~").strip().lower()
        if info not in ("", "python", "py", "python3") or len(lines) < 2:
            return None
        closed = lines[-1].strip().startswith(lines[0].strip()[:3])
        body = "".join(lines[1:-1] if closed else lines[1:])
        return (len(lines[0]), body) if is_python(body) else None
    return (0, code) if is_python(code) else None


def _split_comments(spans: list[Span]) -> list[Span]:
    """Code spans with the comments and docstrings of their Python split out as prose
    (``translate_comments``); doctests and examples inside docstrings stay code."""
    out: list[Span] = []
    for span in spans:
        found = _python_body(span.text) if span.kind == "code" else None
        ranges = python_prose(found[1]) if found else []
        if not ranges:
            out.append(span)
            continue
        offset, pos = found[0], 0
        for start, end, forbid in ranges:
            start, end = start + offset, end + offset
            out.append(Span("code", span.text[pos:start]))
            for part in (
                segment(span.text[start:end])
                if "\n" in span.text[start:end]
                else [Span("prose", span.text[start:end])]
            ):
                out.append(
                    Span("prose", part.text, forbid) if part.kind == "prose" else Span("code", part.text)
                )
            pos = end
        out.append(Span("code", span.text[pos:]))
    return [s for s in out if s.text]

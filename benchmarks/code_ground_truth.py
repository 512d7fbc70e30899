"""Ground truth for code safety: lines of real rows labelled by reading, stored without their text.

``benchmarks/code_labels.jsonl`` holds, for rows of the multi-language instruction set (kept outside
the repository), every non-blank line of each turn with its label: ``code``, ``comment``
(comments and docstrings), ``output`` (a program's output), ``data`` (the values, records, tables
and strings a task works on) or ``prose``; a prose line may list the spans of inline code it holds
(character offsets). Each line and span carries the SHA-1 of its text, so the labels refuse a data
file that differs from the one that was read.

A turn is the alpaca adapter's: the instruction, a newline and the input (when there is one) for
the user, the output for the assistant; line indices count from the turn's first non-blank line.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

LABELS = Path(__file__).resolve().parent / "code_labels.jsonl"
KEPT = ("code", "comment", "output", "data")


@dataclass
class LabelledTurn:
    row: int
    turn: int  # 0: user, 1: assistant
    lines: dict[int, str] = field(default_factory=dict)  # line index -> label
    inline: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # prose line -> spans


class LabelMismatch(ValueError):
    pass


def raw_turns(record: dict) -> list[str]:
    """The record's turns as the alpaca adapter forms them, before any stage touched them."""
    instruction, extra = record.get("instruction") or "", record.get("input") or ""
    user = f"{instruction}\n{extra}" if extra.strip() else instruction
    return [user, record.get("output") or record.get("response") or ""]


def trimmed_lines(text: str) -> list[str]:
    lines = text.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def input_line(record: dict) -> int | None:
    """Index of the first line of the task's input in the trimmed user turn (None: no input)."""
    instruction, extra = record.get("instruction") or "", record.get("input") or ""
    if not extra.strip():
        return None
    lines = raw_turns(record)[0].split("\n")
    leading = next((i for i, ln in enumerate(lines) if ln.strip()), 0)
    return len(instruction.split("\n")) - leading


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def labelled_data_sha256(path: Path = LABELS) -> str:
    """The sha256 of the data file the labels were made on."""
    with path.open(encoding="utf-8") as handle:
        return json.loads(handle.readline())["sha256"]


def load(records: list[dict], path: Path = LABELS) -> dict[tuple[int, int], LabelledTurn]:
    """The labelled turns keyed by (row, turn), each line checked against ``records``."""
    with path.open(encoding="utf-8") as handle:
        header = json.loads(handle.readline())
        entries = [json.loads(line) for line in handle if line.strip()]
    turns: dict[tuple[int, int], LabelledTurn] = {}
    for entry in entries:
        row, turn = entry["row"], entry["turn"]
        if row >= len(records):
            raise LabelMismatch(f"{path.name}: row {row} is past the end of the data ({len(records)} rows)")
        lines = trimmed_lines(raw_turns(records[row])[turn])
        labelled = LabelledTurn(row, turn)
        for item in entry["lines"]:
            index, digest, label = item[0], item[1], item[2]
            if index >= len(lines) or _sha1(lines[index]) != digest:
                raise LabelMismatch(
                    f"{path.name}: row {row} turn {turn} line {index} does not match the data "
                    f"(labels were made on {header['data']} sha256 {header['sha256'][:12]}...)"
                )
            labelled.lines[index] = label
            for start, end, span_digest in item[3] if len(item) > 3 else ():
                if _sha1(lines[index][start:end]) != span_digest:
                    raise LabelMismatch(
                        f"{path.name}: row {row} turn {turn} line {index}: inline span differs"
                    )
                labelled.inline.setdefault(index, []).append((start, end))
        turns[(row, turn)] = labelled
    return turns


def rows_of(turns: dict[tuple[int, int], LabelledTurn]) -> set[int]:
    return {row for row, _ in turns}


def has_code(turns: dict[tuple[int, int], LabelledTurn], row: int) -> bool:
    """Whether a labelled row holds any line or span that must stay as it is."""
    return any(
        any(label in KEPT for label in turn.lines.values()) or turn.inline
        for (r, _), turn in turns.items()
        if r == row
    )


def changed_lines(turn: LabelledTurn, source: str, published: str) -> list[str] | None:
    """By the labels: descriptions of the kept lines and inline spans that changed between the
    source turn (as it entered translation) and the published turn. None when the source turn
    is not the labelled text (so the labels cannot speak for it)."""
    before = source.split("\n")
    labelled_count = max(turn.lines) + 1 if turn.lines else 0
    if len(before) < labelled_count:
        return None
    after = published.split("\n")
    same_shape = len(after) == len(before)
    problems: list[str] = []
    cursor = 0
    for index in sorted(turn.lines):
        label, text = turn.lines[index], before[index]
        if label in KEPT:
            if same_shape:
                if after[index] != text:
                    problems.append(f"line {index} ({label}) {text[:60]!r} -> {after[index][:60]!r}")
                continue
            hit = next((k for k in range(cursor, len(after)) if after[k] == text), None)
            if hit is None:
                problems.append(f"line {index} ({label}) {text[:60]!r} missing")
            else:
                cursor = hit + 1
            continue
        where = after[index] if same_shape else published
        for start, end in turn.inline.get(index, ()):
            if text[start:end] not in where:
                problems.append(f"line {index} inline {text[start:end][:60]!r} lost")
    return problems

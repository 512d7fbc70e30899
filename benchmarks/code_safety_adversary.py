"""Code safety under adversarial translators: ``benchmarks/code_safety.py --adversary NAME``.

Each adversary of ``benchmarks/adversaries.py`` is plugged into a real build through the translate
stage's ``engine = "python:adversaries.py:NAME"`` (``dataset-builder build --trust-code`` in a
subprocess: JSON source -> normalize -> translate with its segmenting, placeholders, verification
and checks -> split -> published Parquet). The stage's quality checks that judge the language of
the output are off (an adversary writes no Russian): only code checks decide.

Every published row is then judged by ``benchmarks/code_judge.py`` (which shares nothing with the
segmenter or the verifier): did a line that is not prose, or inline code in a prose line, change
between ``source_messages`` and ``messages``? Labelled rows (``benchmarks/code_labels.jsonl``) are
also judged by their labels, and by the byte judge of the earlier benchmark (lines without a plain
word) for comparison. Figures are split by half: even row indices (the half rules were tuned on)
and odd ones (the reporting half).

Goal per adversary on the reporting half: at most 1 published row with code changed, and at least
97% of the rows with code published.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import code_ground_truth as truth
import code_judge as judge

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HALVES = {"tuning": 0, "reporting": 1}  # row index parity


def build(name: str, data: Path, work: Path) -> tuple[list[dict], list[dict], float]:
    """One real build with the adversary as the engine: published rows, rejected rows, seconds."""
    from adversaries import ADVERSARIES

    from dataset_builder.testing import code_safety_recipe, version_rows

    root = work / name
    root.mkdir(parents=True)
    shutil.copy(HERE / "adversaries.py", root / "adversaries.py")
    recipe = root / "recipe.toml"
    engine = f"python:adversaries.py:{ADVERSARIES[name].__name__}"
    recipe.write_text(code_safety_recipe(data, name=f"code-safety-{name}", engine=engine), encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    started = time.perf_counter()
    command = [sys.executable, "-m", "dataset_builder", "build", str(recipe), "--trust-code"]
    subprocess.run([*command, "--registry", str(root / "registry")], check=True, env=env, cwd=root)
    seconds = time.perf_counter() - started
    published, rejected = version_rows(root / "registry" / f"code-safety-{name}" / "0.0.1")
    return published, rejected, seconds


def record_index(source_key: str) -> int:
    """The record index in the JSON array: source keys of JSON arrays end in ``[i]``."""
    return int(re.search(r"\[(\d+)\]$", source_key).group(1))


def _turns(messages: list[dict]) -> list[str]:
    return [m["content"] for m in messages if m["role"] != "system"]


def judge_row(record: dict, source: list[str], published: list[str]) -> list[tuple[str, judge.Change]]:
    """The judge's findings for one published row, each with where it is: ``task input`` (the
    alpaca input the adapter puts under the instruction), ``inline code`` (in a prose line),
    ``instruction`` or ``answer`` (a kept line)."""
    found = []
    for turn, (before, after) in enumerate(zip(source, published, strict=True)):
        data_from = truth.input_line(record) if turn == 0 else None
        for change in judge.changes(before, after, data_from=data_from):
            if data_from is not None and change.line >= data_from:
                place = "task input"
            elif change.kind == "inline":
                place = "inline code"
            else:
                place = "instruction" if turn == 0 else "answer"
            found.append((place, change))
    return found


def row_has_code(record: dict) -> bool:
    """By the judge: any turn of the source record with inline code or a kept line that is more
    than a few plain words (a one-word answer such as "True" or "Abstract Factory" is not code)."""
    for turn, text in enumerate(truth.raw_turns(record)):
        lines = "\n".join(truth.trimmed_lines(text))
        data_from = truth.input_line(record) if turn == 0 else None
        for j in judge.judge_lines(lines, data_from=data_from):
            if j.inline or (
                j.kind == judge.KEEP and (len(j.text.split()) > 3 or re.search(r"[^\w\s.,!?'\"-]", j.text))
            ):
                return True
    return False


_PLAIN_WORD = re.compile(r"[A-Za-z][a-z]*[.,:;!?]?")


def byte_judge_changed(source: str, published: str) -> bool:
    """The earlier benchmark's byte judge: lines in which no token is a plain word must stay."""
    before, after = source.split("\n"), published.split("\n")
    wordless = [
        i
        for i, ln in enumerate(before)
        if ln.split() and not any(_PLAIN_WORD.fullmatch(t) for t in ln.split())
    ]
    if len(before) != len(after):
        return bool(wordless)
    return any(before[i] != after[i] for i in wordless)


def evaluate(
    name: str, records: list[dict], labels, published: list[dict], rejected: list[dict], show_reporting: bool
) -> dict:
    """Figures per half. Examples of the reporting half only with ``show_reporting`` (the final run):
    rules are tuned on what the tuning half shows."""
    with_code = {i for i, record in enumerate(records) if row_has_code(record)}
    labelled_rows = truth.rows_of(labels)
    report: dict = {}
    for half, parity in HALVES.items():
        rows = [i for i in range(len(records)) if i % 2 == parity]
        code_rows = [i for i in rows if i in with_code]
        pub = [r for r in published if record_index(r["source_key"]) % 2 == parity]
        rej = [r for r in rejected if record_index(r["source_key"]) % 2 == parity]
        changed, byte_flagged, examples, places = [], 0, [], Counter()
        gt_rows, gt_changed, gt_agree, gt_unmatched = 0, [], 0, 0
        for row in pub:
            index = record_index(row["source_key"])
            record = records[index]
            source = _turns(row["source_messages"] or row["messages"])
            after = _turns(row["messages"])
            findings = judge_row(record, source, after)
            if findings:
                changed.append(index)
                places.update({place for place, _ in findings})
                if len(examples) < 10 and (show_reporting or half == "tuning"):
                    f = findings[0][1]
                    examples.append(
                        f"row {index} line {f.line} {f.kind}: {f.before[:70]!r} -> {str(f.after)[:70]!r}"
                    )
            byte_flagged += any(byte_judge_changed(b, a) for b, a in zip(source, after, strict=True))
            if index in labelled_rows:
                problems = []
                for turn, (b, a) in enumerate(zip(source, after, strict=True)):
                    lt = labels.get((index, turn))
                    if lt is None:
                        continue
                    found = truth.changed_lines(lt, b, a)
                    if found is None:
                        gt_unmatched += 1
                        continue
                    problems += found
                gt_rows += 1
                if problems:
                    gt_changed.append(index)
                gt_agree += bool(problems) == bool(findings)
        published_code = sum(record_index(r["source_key"]) in with_code for r in pub)
        report[half] = {
            "rows": len(rows),
            "rows_with_code": len(code_rows),
            "published": len(pub),
            "published_with_code": published_code,
            "published_share_of_rows_with_code": round(published_code / max(len(code_rows), 1), 4),
            "rejected": dict(Counter(r["reason"] for r in rej)),
            "published_code_changed_judge": len(changed),
            "published_code_changed_where": dict(places),
            "published_code_changed_byte_judge": byte_flagged,
            "labelled_published": gt_rows,
            "labelled_published_code_changed_labels": len(gt_changed),
            "labelled_judge_agrees_with_labels": gt_agree,
            "labelled_turns_not_matching_labels": gt_unmatched,
            "goal_met": len(changed) <= 1 and published_code / max(len(code_rows), 1) >= 0.97,
            "changed_rows": changed[:20],
            "examples": examples,
        }
    return report


def judge_error(records: list[dict], labels) -> dict:
    """The judge against the labels, per label class and half: the share of lines it puts on the
    wrong side (a kept line called prose, or a prose line kept), and inline code spans it misses."""
    out: dict = {}
    for half, parity in HALVES.items():
        lines, wrong = Counter(), Counter()
        spans = spans_missed = extra = 0
        for (row, turn), labelled in labels.items():
            if row % 2 != parity:
                continue
            record = records[row]
            text = truth.trimmed_lines(truth.raw_turns(record)[turn])
            judged = judge.judge_lines(
                "\n".join(text), data_from=truth.input_line(record) if turn == 0 else None
            )
            for index, label in labelled.lines.items():
                lines[label] += 1
                called_prose = judged[index].kind == judge.PROSE
                wrong[label] += called_prose != (label == "prose")
                if label != "prose" or not called_prose:
                    continue
                line = text[index]
                found = [(line.find(s), line.find(s) + len(s)) for s in judged[index].inline]
                for start, end in labelled.inline.get(index, ()):
                    spans += 1
                    spans_missed += not any(a < end and start < b for a, b in found)
                extra += sum(
                    not any(a < end and start < b for start, end in labelled.inline.get(index, ()))
                    for a, b in found
                )
        out[half] = {
            "rows": len({row for row, _ in labels if row % 2 == parity}),
            "lines": dict(lines),
            "error": {label: round(wrong[label] / lines[label], 4) for label in sorted(lines)},
            "wrong": dict(wrong),
            "inline_spans": spans,
            "inline_spans_missed": spans_missed,
            "inline_spans_extra": extra,
        }
    return out


def print_judge_error(error: dict) -> None:
    for half, figures in error.items():
        print(f"\n== judge against the labels, {half} half ({figures['rows']} rows)")
        for label, share in figures["error"].items():
            print(
                f"   {label:8s} {figures['wrong'][label]:4d} / {figures['lines'][label]:5d} lines on the wrong side ({share:.2%})"
            )
        print(
            f"   inline code in prose: {figures['inline_spans_missed']} of {figures['inline_spans']} labelled spans "
            f"missed, {figures['inline_spans_extra']} spans the labels do not have"
        )


def print_report(name: str, report: dict, seconds: float) -> None:
    print(f"\n== adversary {name}: build {seconds:.1f} s")
    for half, f in report.items():
        print(
            f"   {half:9s} rows {f['rows']}, with code {f['rows_with_code']}; published {f['published']} "
            f"({f['published_share_of_rows_with_code']:.2%} of rows with code); rejected {f['rejected']}"
        )
        print(
            f"   {'':9s} published with code changed: judge {f['published_code_changed_judge']}, "
            f"byte judge {f['published_code_changed_byte_judge']}; labelled rows published {f['labelled_published']}, "
            f"changed by the labels {f['labelled_published_code_changed_labels']}, judge agrees on "
            f"{f['labelled_judge_agrees_with_labels']}; goal {'met' if f['goal_met'] else 'NOT met'}"
        )
        if f["published_code_changed_where"]:
            print(f"   {'':9s} rows with code changed, by where: {f['published_code_changed_where']}")
        for example in f["examples"]:
            print(f"   {'':9s} ! {example}")


def main(adversaries: list[str], data_file: Path, rows: int | None, keep: Path | None, final: bool) -> None:
    import tempfile

    raw = data_file.read_bytes()
    records = json.loads(raw)
    labels: dict = {}
    if hashlib.sha256(raw).hexdigest() == truth.labelled_data_sha256():
        try:
            labels = truth.load(records)
        except truth.LabelMismatch as exc:
            sys.exit(f"error: {exc}; the labels file and the data it was made on disagree")
    else:
        # Other data (rows held out from everything, to find what the 4,535 rows do not show):
        # judged by the judge alone.
        print(f"{data_file.name}: not the data the labels were made on; judged by code_judge.py alone")
    records = records[:rows]
    labels = {key: value for key, value in labels.items() if key[0] < len(records)}
    error = judge_error(records, labels)
    if labels:
        print_judge_error(error)
    summary: dict = {"benchmark": "code_safety_adversary", "rows": len(records), "judge_error": error}
    with tempfile.TemporaryDirectory() as tmp:
        work = keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data = work / data_file.name
        data.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
        for name in adversaries:
            published, rejected, seconds = build(name, data, work)
            report = evaluate(name, records, labels, published, rejected, final)
            print_report(name, report, seconds)
            summary[name] = {"seconds": round(seconds, 1), **report}
    print(json.dumps(summary, ensure_ascii=False))


def prose_records(records: list[dict]) -> list[tuple[int, dict]]:
    """Rows without code, made of real text: every turn of the data set that the judge reads as
    prose from its first line to its last (no fence, no kept line, no inline code), paired in
    order into (instruction, answer) rows, each with the half its turns come from. Titles, list
    items, headings and multi-line paragraphs come as they are in the source."""
    turns: dict[int, list[str]] = {0: [], 1: []}
    for index, record in enumerate(records):
        for turn, text in enumerate(truth.raw_turns(record)):
            lines = truth.trimmed_lines(text)
            data_from = truth.input_line(record) if turn == 0 else None
            if not lines:
                continue
            judged = judge.judge_lines("\n".join(lines), data_from=data_from)
            if all(j.kind == judge.PROSE and not j.inline for j in judged):
                turns[index % 2].append("\n".join(lines))
    out = []
    for parity, texts in turns.items():
        for k in range(0, len(texts) - 1, 2):
            out.append((parity, {"instruction": texts[k], "input": "", "output": texts[k + 1]}))
    return out


def prose_run(adversaries: list[str], data_file: Path, keep: Path | None, final: bool) -> dict:
    """Rows without code through real builds with each adversary: how many are rejected, and why
    (the rejected row's detail names the turn, the line and the rule)."""
    import tempfile

    records = json.loads(data_file.read_text(encoding="utf-8"))
    made = prose_records(records)
    summary: dict = {"benchmark": "code_safety_prose", "rows": len(made)}
    with tempfile.TemporaryDirectory() as tmp:
        work = keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data = work / "prose_rows.json"
        data.write_text(json.dumps([record for _, record in made], ensure_ascii=False), encoding="utf-8")
        for name in adversaries:
            _, rejected, seconds = build(name, data, work / "prose")
            print(f"\n== rows without code, adversary {name}: build {seconds:.1f} s")
            summary[name] = {}
            for half, parity in HALVES.items():
                rows = sum(1 for p, _ in made if p == parity)
                rej = [r for r in rejected if made[record_index(r["source_key"])][0] == parity]
                code = [r for r in rej if r["reason"] == "code_changed"]
                other = [r for r in rej if r["reason"] == "other_language"]
                print(
                    f"   {half:9s} rows {rows}: rejected for code {len(code)} ({len(code) / max(rows, 1):.2%}), "
                    f"as another language {len(other)} ({len(other) / max(rows, 1):.2%}), all rejected "
                    f"{dict(Counter(r['reason'] for r in rej))}"
                )
                if half == "tuning" or final:
                    for r in rej[:10]:
                        print(f"   {'':9s} ! {r['reason']}: {r['detail'][:160]}")
                summary[name][half] = {
                    "rows": rows,
                    "rejected_for_code": len(code),
                    "rejected_as_other_language": len(other),
                    "rejected": dict(Counter(r["reason"] for r in rej)),
                }
    return summary

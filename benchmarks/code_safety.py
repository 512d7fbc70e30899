"""Code safety of translation on real rows the project was not tuned on, measured by the verifier.

    python benchmarks/code_safety.py [--data new_codealpaca.json] [--package PATH.argosmodel]
                                     [--rows N] [--beam 1] [--skip-argos-sized]
    python benchmarks/code_safety.py --adversary NAME|all [--rows N]   (see code_safety_adversary.py)

Real multi-language instruction rows (CodeAlpaca's later release: Python, JavaScript, C/C++, Java,
PHP, Ruby, SQL, shell...) go through a real build: JSON source -> normalize -> translate (quality
checks off: a random-weights model writes noise, and noise is what the code checks must survive)
-> published version. Two packages: the Argos-sized stand-in (``../shared/models/``, real speed)
and a tiny package built offline. For each run it reports rows with code, published, rejected by
reason; for every published row, code intact by ``dataset_builder.translation.verify`` (which shares
no code with the segmenter), per kind of code; and byte-identical from the source file (the raw
record's turn against the published translation, so ``normalize`` is inside the measurement).

A third run swaps the model for a stand-in that keeps every ⟦n⟧ placeholder and translates every
word around it: with random weights no placeholder survives, so only this run shows what gets
through when the segmenter alone stands between code and a well-behaved model. A third judge,
sharing nothing with the segmenter or the verifier, checks bytes: every line of the raw record in
which no token is a plain word must reach the published row unchanged.

Baseline, on the tiny package: what an expert writes in an afternoon, translating everything outside
Markdown fences and `backticks`, through the same engine and build, counted by the same judges.

Goals (issue 10): 100% of published rows intact, 100% byte-identical from source, at most 3% of the
rows with code rejected for code reasons. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from dataset_builder.testing import code_safety_recipe  # noqa: E402
from dataset_builder.translation.verify import (  # noqa: E402
    clearly_prose,
    code_tokens,
    fenced_lines,
    first_difference,
    python_tree,
    verbatim_lines,
)

DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "codealpaca-new-4.5k" / "new_codealpaca.json"
DEFAULT_PACKAGE = HERE.parent.parent / "shared" / "models" / "translate-en_ru-bench.argosmodel"
LANGUAGES = {
    "python": r"\bpython\b", "javascript": r"\b(?:javascript|node\.?js|js)\b", "java": r"\bjava\b",
    "c++": r"c\+\+", "c#": r"c#", "c": r"\bc\b(?!\+|#)", "php": r"\bphp\b", "ruby": r"\bruby\b",
    "sql": r"\bsql\b", "shell": r"\b(?:shell|bash|sh)\b", "go": r"\bgo(?:lang)?\b", "rust": r"\brust\b",
    "swift": r"\bswift\b", "kotlin": r"\bkotlin\b", "typescript": r"\btypescript\b",
}  # fmt: skip


def raw_turns(record: dict) -> list[str]:
    """The record's turns as the alpaca adapter forms them, before any stage touched them."""
    instruction, extra = record.get("instruction") or "", record.get("input") or ""
    user = f"{instruction}\n{extra}" if extra.strip() else instruction
    return [user, record.get("output") or record.get("response") or ""]


def kinds(text: str, instruction: str) -> set[str]:
    """Which kinds of code a turn holds, seen by the verifier's helpers."""
    lines = text.split("\n")
    found: set[str] = set()
    fences = fenced_lines(lines)
    if fences:
        found.add("fenced")
    in_fence = {i for first, last, _ in fences for i in range(first, last + 1)}
    prose = [i for i, line in enumerate(lines) if i not in in_fence and clearly_prose(line)]
    if any(code_tokens(lines[i]) for i in prose):
        found.add("inline")
    outside = [ln for i, ln in enumerate(lines) if i not in in_fence and ln.strip()]
    if outside and not prose and (python_tree(text, False) or any(code_tokens(ln) for ln in outside)):
        lang = next((name for name, rx in LANGUAGES.items() if re.search(rx, instruction, re.I)), "other")
        found.add(f"whole-turn:{lang}")
    if prose and any(
        ln.startswith(("    ", "\t")) and ln.strip() and i not in in_fence for i, ln in enumerate(lines)
    ):
        found.add("indented")
    if "program output" in verbatim_lines(lines).values():
        found.add("output-block")
    return found


def has_code(text: str) -> bool:
    lines = text.split("\n")
    return bool(fenced_lines(lines) or python_tree(text, False) or any(code_tokens(ln) for ln in lines))


def _trim_blank_ends(text: str) -> str:
    lines = text.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


@contextmanager
def baseline_segmenter():
    """Swap the stage's segmenter for the afternoon version: Markdown fences and `backticks` are
    code, every other line is prose, translated inside its line."""
    from dataset_builder.translation import langid
    from dataset_builder.translation import segment as ours
    from dataset_builder.translation import turns as stage
    from dataset_builder.translation.segment import Protected, Span

    fence = re.compile(r"(^[ \t]*(?:```|~~~).*?^[ \t]*(?:```|~~~)[^\n]*\n?)", re.M | re.S)
    backticks = re.compile(r"`[^`\n]+`")

    def segment(text: str) -> list[Span]:
        spans = []
        for i, part in enumerate(fence.split(text)):
            if i % 2:
                spans.append(Span("code", part))
                continue
            for line in part.splitlines(keepends=True):
                body = line.rstrip("\r\n")
                spans += [Span("prose", body)] if body.strip() else [Span("raw", body)]
                spans.append(Span("raw", line[len(body) :]))
        return [span for span in spans if span.text]

    def protect(prose: str) -> Protected:
        found: list[str] = []

        def keep(match: re.Match[str]) -> str:
            found.append(match.group(0))
            return ours.PLACEHOLDER.format(len(found) - 1)

        return Protected(backticks.sub(keep, prose), tuple(found))

    saved = stage.segment, langid.segment, stage.protect
    stage.segment = langid.segment = segment
    stage.protect = protect
    try:
        yield
    finally:
        stage.segment, langid.segment, stage.protect = saved


_PLAIN_WORD = re.compile(r"[A-Za-z][a-z]*[.,:;!?]?")


def wordless_lines_changed(raw: str, published: str) -> int:
    """A third judge, sharing nothing with the segmenter or the verifier: lines of the raw turn in
    which no whitespace-separated token is a plain word (``}``, ``x = f(y);``, ``std::cout << x;``)
    hold nothing a translator may translate, so each must come out byte for byte. Returns how many
    did not (every line counts when the line count changed)."""
    before, after = _trim_blank_ends(raw).split("\n"), _trim_blank_ends(published).split("\n")
    wordless = [
        i
        for i, ln in enumerate(before)
        if ln.split() and not any(_PLAIN_WORD.fullmatch(t) for t in ln.split())
    ]
    if len(before) != len(after):
        return len(wordless)
    return sum(before[i] != after[i] for i in wordless)


@contextmanager
def placeholder_keeping_model():
    """Swap the engine for a stand-in of a model that keeps every placeholder and translates
    every word around it: the case where only the segmenter stands between code and the model."""
    from dataset_builder.translation import translator as stage

    words = ["слово", "данные", "функция", "значение", "список", "строка"]

    def translate(self, sentences: list[str]) -> dict[str, str]:
        out = {}
        for sentence in dict.fromkeys(s for s in sentences if s.strip()):
            count = iter(range(1 << 30))

            def russian(match: re.Match[str], count=count) -> str:
                return words[next(count) % len(words)]

            out[sentence] = re.sub(r"(?<![\w\u27e6])[A-Za-z][A-Za-z']*(?![\w\u27e7])", russian, sentence)
        self.ctx.count("sentences_translated", len(out))
        return out

    saved = stage.Translator.translate
    stage.Translator.translate = translate
    try:
        yield
    finally:
        stage.Translator.translate = saved


def run(label: str, data: Path, records: list[dict], package: Path, beam: int, work: Path) -> dict:
    import pyarrow.parquet as pq

    from dataset_builder.publishing.pipeline import build
    from dataset_builder.recipe.schema import load_recipe
    from dataset_builder.registry.store import Registry
    from dataset_builder.translation import packages

    root = work / label
    root.mkdir(parents=True)
    packages.install(package, root / "packages")
    recipe_path = root / "recipe.toml"
    recipe_path.write_text(
        code_safety_recipe(
            data.as_posix(), name="code-safety", packages_dir=(root / "packages").as_posix(), beam_size=beam
        ),
        encoding="utf-8",
    )
    from dataset_builder.errors import UserError
    from dataset_builder.publishing.failures import REJECTED, failure_dir

    started = time.perf_counter()
    published = []
    try:
        result = build(load_recipe(recipe_path), Registry(root / "registry"), show_progress=True)
        for split in result.manifest["splits"].values():
            published += pq.read_table(result.path / split["file"]).to_pylist()
        rejected = pq.read_table(result.path / "rejected" / "rejected.parquet").to_pylist()
    except UserError as exc:  # every row rejected: the failure report holds the rejected table
        print(f"   ({label}: {str(exc)[:120]}...)")
        rejected = pq.read_table(
            failure_dir(root / "registry", "code-safety", "0.0.1") / REJECTED
        ).to_pylist()
    seconds = time.perf_counter() - started

    by_key = dict(enumerate(records))
    with_code = {i for i, rec in by_key.items() if any(has_code(t) for t in raw_turns(rec))}
    report: dict = {
        "rows": len(records),
        "rows_with_code": len(with_code),
        "published": len(published),
        "rejected": dict(Counter(r["reason"] for r in rejected)),
        "seconds": round(seconds, 1),
    }
    code_rejects = [r for r in rejected if r["reason"] == "code_changed"]
    report["code_rejected_of_rows_with_code"] = round(
        sum(_key(r["source_key"]) in with_code for r in code_rejects) / max(len(with_code), 1), 4
    )
    import code_safety_adversary

    intact, identical, per_kind, failures, wordless_rows, judged_rows = 0, 0, Counter(), [], 0, 0
    kind_ok: Counter[str] = Counter()
    for row in published:
        record = by_key[_key(row["source_key"])]
        translated = [m for m in row["messages"] if m["role"] != "system"]
        before = [m for m in row["source_messages"] or row["messages"] if m["role"] != "system"]
        row_intact = all(
            first_difference(b["content"], a["content"]) is None
            for b, a in zip(before, translated, strict=True)
        )
        raw = [t for t in raw_turns(record) if t.strip()]
        diffs = [
            first_difference(_trim_blank_ends(r), _trim_blank_ends(a["content"]))
            for r, a in zip(raw, translated, strict=True)
        ]
        row_identical = all(d is None for d in diffs)
        wordless = [wordless_lines_changed(r, a["content"]) for r, a in zip(raw, translated, strict=True)]
        wordless_rows += any(wordless)
        judged_rows += bool(
            code_safety_adversary.judge_row(
                record, [t["content"] for t in before], [t["content"] for t in translated]
            )
        )
        if any(wordless) and len(failures) < 5:
            failures.append(
                {"source_key": row["source_key"], "difference": "a line without plain words changed"}
            )
        intact += row_intact
        identical += row_identical
        if not row_identical and len(failures) < 5:
            failures.append({"source_key": row["source_key"], "difference": str(next(d for d in diffs if d))})
        for turn, r in zip(translated, raw, strict=True):
            for kind in kinds(r, record.get("instruction") or ""):
                per_kind[kind] += 1
                kind_ok[kind] += (
                    first_difference(_trim_blank_ends(r), _trim_blank_ends(turn["content"])) is None
                )
    report["published_intact"] = round(intact / max(len(published), 1), 4)
    report["published_byte_identical_from_source"] = round(identical / max(len(published), 1), 4)
    report["published_rows_with_a_wordless_line_changed"] = wordless_rows
    report["published_rows_code_changed_judge"] = judged_rows
    report["per_kind"] = {k: {"turns": per_kind[k], "intact": kind_ok[k]} for k in sorted(per_kind)}
    report["first_failures"] = failures
    return report


def _key(source_key: str) -> int:
    """The record index in the JSON array: source keys of JSON arrays end in ``[i]``."""
    return int(re.search(r"\[(\d+)\]$", source_key).group(1))


def print_report(label: str, report: dict) -> None:
    print(f"\n== {label}: {report['rows']} rows, {report['rows_with_code']} with code, {report['seconds']} s")
    print(f"   published {report['published']}, rejected {report['rejected']}")
    print(
        f"   published rows intact {report['published_intact']:.2%}, byte-identical from source "
        f"{report['published_byte_identical_from_source']:.2%}, rows with code rejected for code "
        f"{report['code_rejected_of_rows_with_code']:.2%}; rows with a wordless line changed (byte judge): "
        f"{report['published_rows_with_a_wordless_line_changed']}; rows with code changed (code_judge.py): "
        f"{report['published_rows_code_changed_judge']}"
    )
    for kind, counts in report["per_kind"].items():
        print(f"   {kind:24s} {counts['intact']:5d} / {counts['turns']:5d} turns intact")
    for failure in report["first_failures"]:
        print(f"   ! {failure['source_key']}: {failure['difference'][:150]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--package", type=Path, default=DEFAULT_PACKAGE)
    parser.add_argument("--rows", type=int, default=None, help="the first N rows only")
    parser.add_argument(
        "--beam", type=int, default=1, help="beam size (1: greedy; code safety does not depend on it)"
    )
    parser.add_argument("--skip-argos-sized", action="store_true")
    parser.add_argument(
        "--adversary",
        action="append",
        metavar="NAME",
        help="instead: real builds with an adversarial translator (benchmarks/adversaries.py; 'all' for "
        "every one), judged by benchmarks/code_judge.py and the labelled rows",
    )
    parser.add_argument("--keep-work", type=Path, default=None, help="with --adversary: build in this folder")
    parser.add_argument(
        "--final", action="store_true", help="with --adversary: also show examples from the reporting half"
    )
    parser.add_argument(
        "--prose",
        action="store_true",
        help="with --adversary: instead, rows without code (real prose turns of the data) through the "
        "same builds: how many are rejected for code or as another language",
    )
    args = parser.parse_args()
    if args.adversary and args.prose:
        import code_safety_adversary
        from adversaries import ADVERSARIES

        names = list(ADVERSARIES) if "all" in args.adversary else args.adversary
        summary = code_safety_adversary.prose_run(names, args.data, args.keep_work, args.final)
        print(json.dumps(summary, ensure_ascii=False))
        return
    if args.adversary:
        import code_safety_adversary
        from adversaries import ADVERSARIES

        names = list(ADVERSARIES) if "all" in args.adversary else args.adversary
        unknown = [name for name in names if name not in ADVERSARIES]
        if unknown:
            sys.exit(f"error: --adversary {unknown[0]}: unknown; choose from {', '.join(ADVERSARIES)} or all")
        code_safety_adversary.main(names, args.data, args.rows, args.keep_work, args.final)
        return
    records = json.loads(args.data.read_text(encoding="utf-8"))[: args.rows]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / args.data.name
        data.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
        from dataset_builder.testing import build_tiny_argos_package

        tiny = build_tiny_argos_package(work / "tiny-package")
        results["ours_tiny"] = run("ours_tiny", data, records, tiny, args.beam, work)
        print_report("ours, tiny package", results["ours_tiny"])
        with placeholder_keeping_model():
            results["ours_standin"] = run("ours_standin", data, records, tiny, args.beam, work)
        print_report("ours, a stand-in model that keeps every placeholder", results["ours_standin"])
        with baseline_segmenter():
            results["baseline_tiny"] = run("baseline_tiny", data, records, tiny, args.beam, work)
        print_report("baseline (fences and backticks only), tiny package", results["baseline_tiny"])
        if not args.skip_argos_sized and args.package.is_file():
            results["ours_argos_sized"] = run(
                "ours_argos_sized", data, records, args.package, args.beam, work
            )
            print_report(f"ours, {args.package.name}", results["ours_argos_sized"])
    ours, base = results["ours_tiny"], results["baseline_tiny"]
    print(
        f"\nrows with code rejected for code reasons: ours {ours['code_rejected_of_rows_with_code']:.2%}, "
        f"baseline {base['code_rejected_of_rows_with_code']:.2%}"
    )
    summary = {
        "benchmark": "code_safety",
        "rows": len(records),
        "beam": args.beam,
        **{
            f"{label}_{key}": value
            for label, report in results.items()
            for key, value in report.items()
            if key not in ("per_kind", "first_failures")
        },
    }
    print(json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()

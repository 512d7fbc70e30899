"""How often the verifier and the segmenter make the same prose call on real lines.

    python benchmarks/verifier_agreement.py [--data new_codealpaca.json] [--rows N]

For every non-blank line of every turn (the alpaca adapter's turns: instruction and input, answer):
the *segmenter's call* is "prose" when a prose span of ``segment()`` lies on the line; the
*verifier's call* is "prose" when ``verify_turn`` accepts the turn with the plain words of that one
line changed (a transliterator; everything else of the turn untouched), "code" when it refuses, and
"code" for a line with no plain word to change. Figures per half (even row indices: tuning, odd:
reporting) and the two kinds of disagreement; a useful second judge disagrees where the first is
unsure, so examples of each kind are printed for the tuning half. The task input is judged as part
of the turn without its boundary (``data_lines``), as lines of any turn. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from dataset_builder.translation.segment import segment  # noqa: E402
from dataset_builder.translation.verify import verify_turn  # noqa: E402

DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "codealpaca-new-4.5k" / "new_codealpaca.json"
_WORD = re.compile(r"(?<!\S)[A-Za-z][a-z]*(?=[.,:;!?]?(?:\s|$))")
_CYRILLIC = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "абцдефгхийклмнопкрстуввкызАБЦДЕФГХИЙКЛМНОПКРСТУВВКЫЗ",
)


def turns(record: dict) -> list[str]:
    instruction, extra = record.get("instruction") or "", record.get("input") or ""
    user = f"{instruction}\n{extra}" if extra.strip() else instruction
    return [t for t in (user, record.get("output") or "") if t.strip()]


def segmenter_prose_lines(text: str) -> set[int]:
    found: set[int] = set()
    pos = 0
    for span in segment(text):
        if span.kind == "prose" and span.text.strip():
            first = text.count("\n", 0, pos)
            found.update(range(first, first + span.text.count("\n") + 1))
        pos += len(span.text)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rows", type=int, default=None)
    args = parser.parse_args()
    records = json.loads(args.data.read_text(encoding="utf-8"))[: args.rows]
    started = time.perf_counter()
    summary: dict = {"benchmark": "verifier_agreement", "rows": len(records)}
    for half, parity in (("tuning", 0), ("reporting", 1)):
        calls: Counter[tuple[str, str]] = Counter()
        with_words: Counter[bool] = Counter()  # lines with a plain word to change: agree or not
        examples: dict[str, list[str]] = {
            "segmenter prose, verifier code": [],
            "segmenter code, verifier prose": [],
        }
        for index in range(parity, len(records), 2):
            for text in turns(records[index]):
                lines = text.split("\n")
                sent = segmenter_prose_lines(text)
                for i, line in enumerate(lines):
                    if not line.strip():
                        continue
                    changed = _WORD.sub(lambda m: m.group(0).translate(_CYRILLIC), line)
                    spoiled = "\n".join([*lines[:i], changed, *lines[i + 1 :]])
                    verifier = "prose" if changed != line and verify_turn(text, spoiled) is None else "code"
                    ours = "prose" if i in sent else "code"
                    calls[(ours, verifier)] += 1
                    if changed != line:
                        with_words[ours == verifier] += 1
                    if ours != verifier and half == "tuning":
                        kind = f"segmenter {ours}, verifier {verifier}"
                        if len(examples[kind]) < 8:
                            examples[kind].append(f"row {index}: {line.strip()[:90]!r}")
        total = sum(calls.values())
        agree = calls[("prose", "prose")] + calls[("code", "code")]
        summary[half] = {
            "lines": total,
            "agreement": round(agree / max(total, 1), 4),
            "segmenter_prose_verifier_code": calls[("prose", "code")],
            "segmenter_code_verifier_prose": calls[("code", "prose")],
            "both_prose": calls[("prose", "prose")],
            "lines_with_a_word": sum(with_words.values()),
            "agreement_on_lines_with_a_word": round(with_words[True] / max(sum(with_words.values()), 1), 4),
        }
        print(
            f"{half:9s} {total} lines: agree {agree / max(total, 1):.2%}; segmenter prose, verifier code "
            f"{calls[('prose', 'code')]}; segmenter code, verifier prose {calls[('code', 'prose')]}; on the "
            f"{sum(with_words.values())} lines with a word to change: agree "
            f"{with_words[True] / max(sum(with_words.values()), 1):.2%}"
        )
        for kind, shown in examples.items():
            for example in shown:
                print(f"   {kind}: {example}")
    summary["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()

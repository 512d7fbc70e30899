"""Regenerate the bundled sample (``recipes/sample_data/*.jsonl``): 200 synthetic rows in the three source
schemas of the real corpus, plus planted exact duplicates and rows that must be rejected.

    python recipes/sample_data/make_sample.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "benchmarks"))

from synthetic_corpus import generate  # noqa: E402

BAD_ROWS = {
    "alpaca": [
        {"instruction": "Write a Python function that returns 42.", "input": "", "output": 42},
        {"instruction": "Write a Python one-liner that sums a list.", "input": "", "output": ""},
        {"instruction": "Explain list comprehensions.", "input": "", "answer": "renamed column"},
    ],
    "chat_rounds": [
        {
            "data_name": "code_exercise",
            "id": 9001,
            "chat_rounds": [
                {"role": "human", "content": "Write a function with a docstring.", "chat_round_id": 0}
            ],
        },
        {"data_name": "code_exercise", "id": 9002, "chat_rounds": "not a list"},
    ],
    "ru_qa": [
        {"вопрос": "Как отсортировать словарь по значениям?", "ответ": "   "},
        {"вопрос": None, "ответ": "Используйте sorted(d.items(), key=lambda kv: kv[1])."},
    ],
}


def main() -> None:
    corpus = generate(200, seed=7, dup_rate=0.03, near_dup_rate=0.03)
    for kind, records in corpus.items():
        # Bad rows are spread through the file, not appended, so stages meet them mid-stream.
        for i, bad in enumerate(BAD_ROWS[kind]):
            records.insert(7 + 11 * i, bad)
        path = HERE / f"{kind}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for record in records:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        print(f"{path.name}: {len(records)} rows")
    # An external evaluation set in HumanEval's shape: two prompts planted from training rows
    # (contamination the decontaminate stage must find) and one unrelated prompt.
    planted = [corpus["alpaca"][5]["instruction"], corpus["alpaca"][40]["instruction"]]
    eval_rows = [{"task_id": f"Sample/{i}", "prompt": p} for i, p in enumerate(planted)]
    eval_rows.append(
        {"task_id": "Sample/2", "prompt": 'def add(a: int, b: int) -> int:\n    """Add two integers."""\n'}
    )
    with (HERE / "eval_prompts.jsonl").open("w", encoding="utf-8") as fh:
        for record in eval_rows:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from dataset_builder.rows import CANONICAL_SCHEMA, make_row_id
from dataset_builder.stages import stage_class
from dataset_builder.stages.base import RejectSink, StageContext, StageStats
from dataset_builder.stages.normalize import normalize_text


def _rows(*pairs: tuple[str, str], source: str = "s") -> list[dict]:
    out = []
    for i, (user, answer) in enumerate(pairs):
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        out.append(
            {
                "row_id": make_row_id(source, messages),
                "source": source,
                "source_key": f"f:{i + 1}",
                "lang": "en",
                "messages": messages,
            }
        )
    return out


def _run(
    stage_type: str, rows: list[dict], tmp_path: Path, **settings
) -> tuple[list[dict], RejectSink, StageStats]:
    cls = stage_class(stage_type)
    stage = cls(cls.Config(**settings))
    rejects, stats = RejectSink(), StageStats(stage_type)
    ctx = StageContext(stage_type, stats, rejects, tmp_path, show_progress=False)
    schema = CANONICAL_SCHEMA
    if "dup_cluster" in rows[0]:
        schema = schema.append(pa.field("dup_cluster", pa.string()))
    batches = [pa.Table.from_pylist(rows[i : i + 3], schema=schema) for i in range(0, len(rows), 3)]
    out = [r for b in stage.run(iter(batches), ctx) for r in b.to_pylist()]
    return out, rejects, stats


def test_normalize_keeps_code_indentation_and_russian_letters() -> None:
    decomposed = "и\u0306од, е\u0308ж"  # й and ё as base letter + combining mark
    text = "\r\n\r\nЗаголовок   \r\n```python\ndef f():\n    return 1   \n\n\tpass\n```\t\n\n"
    assert normalize_text(decomposed) == "йод, ёж"
    # Prose is normalized; the fenced block keeps every byte, trailing spaces and tab included.
    assert normalize_text(text) == "Заголовок\n```python\ndef f():\n    return 1   \n\n\tpass\n```\t\n"
    assert normalize_text("    indented first line\n") == "    indented first line\n"
    assert normalize_text("\ufeffa\x00b") == "ab"


def test_normalize_drops_empty_turns(tmp_path: Path) -> None:
    rows = _rows(("Вопрос про й и ё?", "  \n "))
    rows[0]["messages"].insert(0, {"role": "system", "content": ""})
    out, rejects, stats = _run("normalize", rows, tmp_path)
    assert out[0]["messages"] == [{"role": "user", "content": "Вопрос про й и ё?"}]
    assert stats.counters["empty_turns_removed"] == 2 and rejects.count == 0


def test_quality_rejects_with_reasons(tmp_path: Path) -> None:
    rows = _rows(("Write a function.", "def f(): pass"), ("Hi", "x" * 50), ("Long enough question", "ok"))
    rows.append({**rows[0], "messages": [{"role": "user", "content": "Only a question here"}]})
    out, rejects, stats = _run("quality", rows, tmp_path, min_prompt_chars=5, max_answer_chars=40)
    assert len(out) == 2
    assert dict(stats.dropped) == {"prompt_too_short": 1, "empty_answer": 1}
    assert {r["reason"] for r in rejects.table().to_pylist()} == {"prompt_too_short", "empty_answer"}


def test_exact_dedup_keeps_first_seen(tmp_path: Path) -> None:
    rows = _rows(
        ("a question", "an answer"),
        ("b question", "b answer"),
        ("a question", "an answer"),
        ("a question", "another answer"),
        ("b question", "b answer"),
    )
    out, rejects, _ = _run("exact_dedup", rows, tmp_path)
    assert [r["source_key"] for r in out] == ["f:1", "f:2", "f:4"]
    assert [r["source_key"] for r in rejects.table().to_pylist()] == ["f:3", "f:5"]
    out, _, _ = _run("exact_dedup", rows, tmp_path, key="prompt")
    assert [r["source_key"] for r in out] == ["f:1", "f:2"]


def test_split_is_stable_when_rows_come_and_go(tmp_path: Path) -> None:
    rows = _rows(*[(f"question {i}", f"answer {i}") for i in range(400)])
    full, _, _ = _run("split", rows, tmp_path, test_ratio=0.25, seed=3)
    half, _, _ = _run("split", rows[::2], tmp_path, test_ratio=0.25, seed=3)
    by_id = {r["row_id"]: r["split"] for r in full}
    assert all(by_id[r["row_id"]] == r["split"] for r in half)
    share = sum(r["split"] == "test" for r in full) / len(full)
    assert 0.18 < share < 0.32
    other_seed, _, _ = _run("split", rows, tmp_path, test_ratio=0.25, seed=4)
    assert [r["split"] for r in other_seed] != [r["split"] for r in full]


def test_split_keeps_groups_together(tmp_path: Path) -> None:
    rows = _rows(*[(f"question {i}", f"answer {i}") for i in range(200)])
    for i, row in enumerate(rows):
        row["dup_cluster"] = f"c{i // 4}"
    out, _, _ = _run("split", rows, tmp_path, test_ratio=0.3, seed=0)
    groups: dict[str, set[str]] = {}
    for row in out:
        groups.setdefault(row["dup_cluster"], set()).add(row["split"])
    assert all(len(s) == 1 for s in groups.values())
    assert {"train", "test"} == set().union(*groups.values())


def test_format_zephyr_and_system_policies(tmp_path: Path) -> None:
    rows = _rows(("Q", "A"))
    out, _, _ = _run("format", rows, tmp_path, template="zephyr", system="empty")
    assert out[0]["text"] == "<|system|>\n</s>\n<|user|>\nQ</s>\n<|assistant|>\nA</s>\n"
    assert out[0]["prompt"] == "<|system|>\n</s>\n<|user|>\nQ</s>\n<|assistant|>\n"
    assert out[0]["completion"] == "A</s>\n"
    out, _, _ = _run("format", rows, tmp_path, template="chatml", system="fixed", system_prompt="Be brief.")
    assert out[0]["text"] == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
    )
    assert out[0]["prompt"] + out[0]["completion"] == out[0]["text"]
    out, _, _ = _run("format", rows, tmp_path, template="alpaca", system="none")
    assert out[0]["text"] == "### Instruction:\nQ\n\n### Response:\nA</s>\n\n"
    assert out[0]["completion"] == "A</s>\n\n"


def test_format_custom_jinja_errors_become_rejects(tmp_path: Path) -> None:
    template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}"
        "[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    )
    rows = _rows(("Q", "A"), ("Q2", "A2"))
    rows[1]["messages"].insert(0, {"role": "system", "content": "S"})
    out, rejects, _ = _run("format", rows, tmp_path, template="jinja", jinja=template)
    assert [r["text"] for r in out] == ["[user] Q\n[assistant] A\n"]
    assert rejects.table().to_pylist()[0]["reason"] == "template_error"

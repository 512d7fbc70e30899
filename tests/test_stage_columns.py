"""The stages that work on a batch's columns (normalize, quality, format, exact dedup, the writer's
content hash) against what they did row by row: the same rows, types, rejects and counters, on
rows built to trip them (line ends, BOM, NUL, Unicode spaces, decomposed letters, control
characters, empty and blank turns, system turns anywhere, roles no template knows, extra columns of
other types, a column that is null in a whole batch)."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pyarrow as pa
import pytest

from dataset_builder.chat.templates import BUILTIN_FORMATS
from dataset_builder.publishing.json_lines import canonical_json_lines
from dataset_builder.rows import MESSAGES_TYPE
from dataset_builder.stages import stage_class
from dataset_builder.stages.base import RejectSink, RowStage, StageContext, StageStats

PIECES = [
    "word", "слово", "и\u0306", "e\u0301", "ﬁ", "\ufeff", "\x00", "\x1f", "\x7f", '"', "\\", "\n", "\n\n",
    "\r\n", "\r", " ", "\t", "\f", "\v", "\u00a0", "\u2003", "\u200b", "\u3000", "\u2028", "\x85",
    "```python\n", "```\n", "    return x  \n", "😀", "%s", "<|assistant|>\n", "</s>",
]  # fmt: skip


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 12)))


def _batches(seed: int, roles: tuple[str, ...] = ("system", "user", "assistant")) -> list[pa.Table]:
    rng = random.Random(seed)
    schema = pa.schema(
        [
            ("row_id", pa.string()),
            ("source", pa.string()),
            ("source_key", pa.string()),
            ("lang", pa.string()),
            ("messages", MESSAGES_TYPE),
            ("input", pa.string()),
            ("n", pa.int32()),
        ]
    )
    rows = []
    for i in range(240):
        turns = [{"role": rng.choice(roles), "content": _text(rng)} for _ in range(rng.randint(0, 5))]
        if i % 7 == 0:  # an exact copy of an earlier row
            turns = [dict(m) for m in rows[rng.randrange(len(rows))]["messages"]] if rows else turns
        rows.append(
            {
                "row_id": f"id{i}",
                "source": rng.choice(["a", "b"]),
                "source_key": f"f.jsonl:{i + 1}",
                "lang": "en",
                "messages": turns,
                # null in every row of the first batch
                "input": None if i < 40 or rng.random() < 0.3 else _text(rng),
                "n": rng.choice([None, 3, -7]),
            }
        )
    return [pa.Table.from_pylist(rows[i : i + 40], schema=schema) for i in range(0, len(rows), 40)]


def _run(stage, batches: list[pa.Table], row_by_row: bool) -> tuple[list[pa.Table], pa.Table, StageStats]:
    stats = StageStats(stage.name)
    ctx = StageContext(stage.name, stats, RejectSink(), Path("."), show_progress=False)
    run = RowStage.run if row_by_row else type(stage).run
    out = list(run(stage, iter(batches), ctx))
    return out, ctx.rejects.table(), stats


def _assert_same(stage, batches: list[pa.Table]) -> None:
    columns, rejected, stats = _run(stage, batches, row_by_row=False)
    rows, rejected_rows, row_stats = _run(stage, batches, row_by_row=True)
    assert [b.schema for b in columns] == [b.schema for b in rows]
    assert [b.to_pylist() for b in columns] == [b.to_pylist() for b in rows]
    assert rejected.equals(rejected_rows)
    assert list(stats.counters.items()) == list(row_stats.counters.items())
    assert stats.dropped == row_stats.dropped


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"normalize_code": True},
        {"unicode_form": "NFKC", "drop_empty_turns": False},
        {"strip_trailing_whitespace": False},
    ],
)
def test_normalize_on_columns_equals_row_by_row(settings: dict) -> None:
    stage = stage_class("normalize")(stage_class("normalize").Config(**settings))
    batches = _batches(1)
    _assert_same(stage, batches)
    changed = _run(stage, batches, row_by_row=False)[2].counters
    assert changed.get("turns_changed", 0) > 50  # the rows do give it work


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"min_prompt_chars": 4, "max_answer_chars": 12, "max_turns": 3},
        {"require_assistant_last": False, "min_answer_chars": 0, "max_prompt_chars": 9},
    ],
)
def test_quality_on_columns_equals_row_by_row(settings: dict) -> None:
    stage = stage_class("quality")(stage_class("quality").Config(**settings))
    _assert_same(stage, _batches(2))


@pytest.mark.parametrize("template", ["zephyr", "chatml", "alpaca"])
@pytest.mark.parametrize("system", ["keep", "none", "empty", "fixed"])
def test_format_on_columns_equals_row_by_row_and_jinja(template: str, system: str) -> None:
    config = stage_class("format").Config(template=template, system=system, system_prompt="Be %s\n")
    stage = stage_class("format")(config)
    batches = _batches(3)
    _assert_same(stage, batches)
    chat = BUILTIN_FORMATS[template]
    out, _, _ = _run(stage, batches, row_by_row=False)
    for row in (r for b in out for r in b.to_pylist()):
        messages = row["messages"]
        assert row["text"] == chat.render(messages)
        if messages and messages[-1]["role"] == "assistant":
            assert row["prompt"] == chat.render(messages[:-1], add_generation_prompt=True)
        else:
            assert row["prompt"] == row["text"]
        assert row["prompt"] + row["completion"] == row["text"]


def test_format_takes_rows_with_other_roles_row_by_row() -> None:
    stage = stage_class("format")(stage_class("format").Config(template="chatml"))
    _assert_same(stage, _batches(4, roles=("system", "user", "assistant", "tool")))


@pytest.mark.parametrize("settings", [{}, {"key": "prompt"}, {"casefold": True}])
def test_exact_dedup_keeps_the_first_of_equal_conversations(settings: dict) -> None:
    stage = stage_class("exact_dedup")(stage_class("exact_dedup").Config(**settings))
    batches = _batches(5)
    out, rejected, _ = _run(stage, batches, row_by_row=False)
    # Expected: equal keys compared as plain Python values, first row wins.
    first: dict[str, str] = {}
    expect_kept, expect_dropped = [], []
    for row in (r for b in batches for r in b.to_pylist()):
        turns = [
            (m["role"], m["content"]) for m in row["messages"] if "key" not in settings or m["role"] == "user"
        ]
        key = repr(turns).casefold() if settings.get("casefold") else repr(turns)
        if key in first:
            expect_dropped.append((row["row_id"], f"{first[key]}"))
        else:
            first[key] = f"{row['source']}:{row['source_key']}"
            expect_kept.append(row["row_id"])
    assert [r["row_id"] for b in out for r in b.to_pylist()] == expect_kept
    dropped = rejected.select(["row_id", "duplicate_of"]).to_pylist()
    assert [(r["row_id"], r["duplicate_of"]) for r in dropped] == expect_dropped
    assert len(expect_dropped) > 20


def _json_lines(table: pa.Table) -> bytes:
    rows = table.to_pylist()
    return "".join(
        json.dumps(r, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n" for r in rows
    ).encode()


@pytest.mark.parametrize("extra", ["none", "float", "odd names"])
def test_content_hash_lines_are_json_dumps_of_each_row(extra: str) -> None:
    table = pa.concat_tables(_batches(6)).slice(13)
    n = len(table)
    every_character = "".join(map(chr, range(128))) + "\u2028\u2029\x85\ud7ff\ue000\uffff\U0010ffff"
    turns = [
        None
        if i % 11 == 0
        else [None, {"role": "user", "content": None}, {"content": every_character, "role": ""}]
        for i in range(n)
    ]
    table = table.append_column("turns", pa.array(turns, MESSAGES_TYPE))
    table = table.append_column("flag", pa.array([i % 3 == 0 if i % 4 else None for i in range(n)]))
    table = table.append_column(
        "big", pa.array([2**63 - i if i % 2 else None for i in range(n)], pa.uint64())
    )
    if extra == "float":  # written in Python, value by value
        table = table.append_column("score", pa.array([float(i) / 3 if i % 5 else None for i in range(n)]))
    if extra == "odd names":
        table = table.append_column('a "quoted" %s name', pa.array([every_character] * n))
    assert (
        hashlib.sha256(canonical_json_lines(table)).hexdigest()
        == hashlib.sha256(_json_lines(table)).hexdigest()
    )


def test_exact_dedup_keys_tell_apart_turns_that_join_alike() -> None:
    """Conversations whose turns, run together, read the same are not duplicates."""
    conversations = [
        [("user", "ab"), ("assistant", "c")],
        [("user", "a"), ("assistant", "bc")],
        [("user", "a"), ("assistant", "b"), ("assistant", "c")],
        [("user", "1:a1:b"), ("assistant", "c")],
        [("user:1", ":a"), ("assistant", "c")],
        [("user", "ab"), ("assistant", "c")],  # the only copy
    ]
    rows = [
        {
            "row_id": str(i),
            "source": "s",
            "source_key": f"f:{i}",
            "messages": [{"role": r, "content": c} for r, c in turns],
        }
        for i, turns in enumerate(conversations)
    ]
    schema = pa.schema(
        [
            ("row_id", pa.string()),
            ("source", pa.string()),
            ("source_key", pa.string()),
            ("messages", MESSAGES_TYPE),
        ]
    )
    stage = stage_class("exact_dedup")()
    out, rejected, _ = _run(stage, [pa.Table.from_pylist(rows, schema=schema)], row_by_row=False)
    assert [r["row_id"] for b in out for r in b.to_pylist()] == ["0", "1", "2", "3", "4"]
    assert rejected.column("duplicate_of").to_pylist() == ["s:f:0"]


def test_row_ids_of_a_batch_are_sha256_of_source_and_turns() -> None:
    from dataset_builder.rows import row_ids

    messages = pa.concat_tables(_batches(7)).column("messages").combine_chunks().slice(5)
    every_character = "".join(map(chr, range(128))) + "\u2028😀й"
    messages = pa.concat_arrays(
        [messages, pa.array([[{"role": 'a"b', "content": every_character}]], MESSAGES_TYPE)]
    )

    def expected(row: list[dict]) -> str:
        turns = json.dumps(
            [[m["role"], m["content"]] for m in row], ensure_ascii=False, separators=(",", ":")
        )
        return hashlib.sha256(b"src" + b"\x00" + turns.encode()).hexdigest()[:32]

    assert row_ids("src", messages) == [expected(row) for row in messages.to_pylist()]

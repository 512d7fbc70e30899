from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_jsonl

from dataset_builder.errors import InputError
from dataset_builder.recipe import parse_recipe
from dataset_builder.sources import LoadResult, load_sources
from dataset_builder.stages.base import RejectSink, StageContext, StageStats


def _load(tmp_path: Path, source: dict, publish: dict | None = None) -> tuple[list[dict], RejectSink]:
    recipe = parse_recipe(
        {"dataset": {"name": "t", "version": "1"}, "sources": [source], "publish": publish or {}},
        tmp_path / "recipe.toml",
    )
    rejects = RejectSink()
    ctx = StageContext("load", StageStats("load"), rejects, tmp_path)
    rows = [r for batch in load_sources(recipe, ctx, LoadResult()) for r in batch.to_pylist()]
    return rows, rejects


ALPACA = [
    {"instruction": "Add two numbers.", "input": "1, 2", "output": "```python\nprint(1 + 2)\n```"},
    {"instruction": "Say hi.", "input": "", "output": "print('hi')"},
]


def test_alpaca_jsonl(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", ALPACA)
    rows, rejects = _load(tmp_path, {"name": "a", "adapter": "alpaca", "paths": ["a.jsonl"]})
    assert [r["messages"] for r in rows] == [
        [
            {"role": "user", "content": "Add two numbers.\n1, 2"},
            {"role": "assistant", "content": "```python\nprint(1 + 2)\n```"},
        ],
        [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "print('hi')"}],
    ]
    assert [r["source_key"] for r in rows] == ["a.jsonl:1", "a.jsonl:2"]
    assert rows[0]["row_id"] != rows[1]["row_id"] and len(rows[0]["row_id"]) == 32
    assert rejects.count == 0


def test_codealpaca_response_column_and_json_array(tmp_path: Path) -> None:
    records = [{"instruction": "Reverse a list.", "input": "", "response": "xs[::-1]", "output": "xs[::-1]"}]
    (tmp_path / "c.json").write_text(json.dumps(records, indent=2), encoding="utf-8")
    no_output = [{"instruction": "Reverse.", "input": "", "response": "xs[::-1]"}]
    (tmp_path / "d.json").write_text(json.dumps(no_output), encoding="utf-8")
    rows, _ = _load(tmp_path, {"name": "c", "adapter": "alpaca", "paths": ["*.json"]})
    assert [r["messages"][1]["content"] for r in rows] == ["xs[::-1]", "xs[::-1]"]
    assert rows[1]["source_key"] == "d.json[0]"


def test_chat_rounds_parquet(tmp_path: Path) -> None:
    table = pa.Table.from_pylist(
        [
            {
                "data_name": "x",
                "id": 1,
                "chat_rounds": [
                    {"role": "human", "content": "Write f.", "chat_round_id": 0},
                    {"role": "bot", "content": "def f():\n    return 1", "chat_round_id": 1},
                ],
            },
        ]
    )
    pq.write_table(table, tmp_path / "ce.parquet")
    rows, _ = _load(tmp_path, {"name": "ce", "adapter": "chat_rounds", "paths": ["ce.parquet"]})
    assert rows[0]["messages"] == [
        {"role": "user", "content": "Write f."},
        {"role": "assistant", "content": "def f():\n    return 1"},
    ]


def test_russian_qa_csv_with_column_mapping(tmp_path: Path) -> None:
    with (tmp_path / "ru.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, ["вопрос", "ответ"])
        writer.writeheader()
        writer.writerow({"вопрос": "Как прочитать файл?", "ответ": "with open(p) as f:\n    data = f.read()"})
    rows, _ = _load(
        tmp_path,
        {
            "name": "ru",
            "adapter": "qa",
            "paths": ["ru.csv"],
            "language": "ru",
            "columns": {"question": "вопрос", "answer": "ответ"},
        },
    )
    assert rows[0]["messages"][1]["content"] == "with open(p) as f:\n    data = f.read()"
    assert rows[0]["lang"] == "ru"


def test_prompt_completion_and_messages(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "pc.jsonl", [{"prompt": "P", "completion": "C"}])
    write_jsonl(
        tmp_path / "m.jsonl",
        [
            {
                "messages": [
                    {"role": "system", "content": "S"},
                    {"role": "user", "content": "U"},
                    {"role": "assistant", "content": "A"},
                ]
            }
        ],
    )
    rows, _ = _load(tmp_path, {"name": "pc", "adapter": "prompt_completion", "paths": ["pc.jsonl"]})
    assert rows[0]["messages"][0] == {"role": "user", "content": "P"}
    rows, _ = _load(tmp_path, {"name": "m", "adapter": "messages", "paths": ["m.jsonl"]})
    assert [m["role"] for m in rows[0]["messages"]] == ["system", "user", "assistant"]


def test_row_level_problems_are_rejected_with_reasons(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "a.jsonl",
        [
            ALPACA[0],
            {"instruction": "x", "input": "", "output": 5},
            {"instruction": None, "input": "", "output": "y"},
            {"instruction": "x", "input": ""},
            ["not", "an", "object"],
            {"instruction": "big", "input": "", "output": "z" * 2_000},
        ],
    )
    rows, rejects = _load(
        tmp_path, {"name": "a", "adapter": "alpaca", "paths": ["a.jsonl"]}, {"max_row_bytes": 1_000}
    )
    assert len(rows) == 1
    got = [(r["source_key"], r["reason"]) for r in rejects.table().to_pylist()]
    assert got == [
        ("a.jsonl:2", "non_string_field"),
        ("a.jsonl:3", "missing_value"),
        ("a.jsonl:4", "missing_column"),
        ("a.jsonl:5", "not_an_object"),
        ("a.jsonl:6", "row_too_large"),
    ]
    first = rejects.table().to_pylist()[0]
    assert first["detail"] == "key 'output' is int, expected string"
    assert json.loads(first["raw"])["output"] == 5


def test_ten_megabyte_row_is_rejected_not_loaded(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "a.jsonl", [ALPACA[0], {"instruction": "big", "input": "", "output": "x" * 10_000_000}]
    )
    rows, rejects = _load(tmp_path, {"name": "a", "adapter": "alpaca", "paths": ["a.jsonl"]})
    assert len(rows) == 1
    rejected = rejects.table().to_pylist()[0]
    assert rejected["reason"] == "row_too_large" and rejected["source_key"] == "a.jsonl:2"
    assert len(rejected["raw"]) < 70_000 and "truncated" in rejected["raw"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b'{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": \n',
            r"a\.jsonl:2: invalid JSON",
        ),
        (
            b'{"instruction": "a", "output": "b"}\n{"instruction": "\xff\xfe", "output": "b"}\n',
            r"a\.jsonl:2: not valid UTF-8 \(byte 0xff",
        ),
        (b"", r"a\.jsonl: file is empty"),
        (b"\n\n", r"a\.jsonl: file is empty"),
        (b'{"instruction": "a", "answer": "b"}\n', r"a\.jsonl:1: missing column 'output' or 'response'"),
    ],
)
def test_file_level_problems_name_file_and_line(tmp_path: Path, content: bytes, expected: str) -> None:
    (tmp_path / "a.jsonl").write_bytes(content)
    with pytest.raises(InputError, match=expected):
        _load(tmp_path, {"name": "a", "adapter": "alpaca", "paths": ["a.jsonl"]})


def test_missing_parquet_column_and_missing_file(tmp_path: Path) -> None:
    pq.write_table(pa.table({"question": ["q"], "reply": ["a"]}), tmp_path / "q.parquet")
    with pytest.raises(InputError, match=r"q\.parquet: missing column 'answer'"):
        _load(tmp_path, {"name": "q", "adapter": "qa", "paths": ["q.parquet"]})
    with pytest.raises(InputError, match="no file matches"):
        _load(tmp_path, {"name": "q", "adapter": "qa", "paths": ["nothing-*.jsonl"]})


def test_hub_source_fails_fast_when_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import time

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    with pytest.raises(InputError, match="Hub unreachable"):
        _load(tmp_path, {"name": "h", "type": "hub", "hub_id": "org/ds", "adapter": "alpaca"})
    assert time.monotonic() - start < 10


def test_hub_source_offline_without_cache_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        _load(tmp_path, {"name": "h", "type": "hub", "hub_id": "org/not-cached", "adapter": "alpaca"})
    assert "org/not-cached" in str(err.value) and "\n" not in str(err.value)

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_jsonl

from dataset_builder.errors import InputError
from dataset_builder.recipe.schema import parse_recipe
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
    with pytest.raises(InputError, match="Hub is unreachable"):
        _load(tmp_path, {"name": "h", "type": "hub", "hub_id": "org/ds", "adapter": "alpaca"})
    assert time.monotonic() - start < 10


def test_hub_source_offline_without_cache_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        _load(tmp_path, {"name": "h", "type": "hub", "hub_id": "org/not-cached", "adapter": "alpaca"})
    assert "org/not-cached" in str(err.value) and "\n" not in str(err.value)


def _damaged_parquet(path: Path) -> None:
    """A Parquet file whose footer reads but whose second row group's pages are damaged."""
    rows = [
        {"instruction": f"task {i} " + "x" * 50, "output": f"answer {i} " + "y" * 80} for i in range(3000)
    ]
    pq.write_table(pa.Table.from_pylist(rows), path, compression="zstd", row_group_size=1000)
    group = pq.ParquetFile(path).metadata.row_group(1).column(0)
    data = bytearray(path.read_bytes())
    start = group.dictionary_page_offset or group.data_page_offset
    for k in range(start, start + 200):
        data[k] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.parquet", b"PAR1 this is not parquet at all", r"a\.parquet: not a readable Parquet file \("),
        ("a.parquet", b"", r"a\.parquet: not a readable Parquet file \("),
        ("a.parquet", "damaged", r"a\.parquet: damaged Parquet row group 1 \(rows 1000 to 1999\): "),
        (
            "a.json",
            b'[{"instruction": "a", "output": "b"}, {"instruction": "c", "out',
            r"a\.json:1: invalid JSON",
        ),
        ("a.json", b"[" * 100_000 + b"]" * 100_000, r"a\.json: JSON nested too deeply"),
        (
            "a.jsonl",
            b'{"instruction": "a", "output": "b"}\n' + b"[" * 100_000 + b"\n",
            r"a\.jsonl:2: JSON nested",
        ),
        ("a.csv", b"instruction,output\na,b\n\xff,d\n", r"a\.csv:3: not valid UTF-8 \(byte 0xff"),
        ("a.csv.gz", b"\x1f\x8b\x08\x00 not really gzip", r"a\.csv\.gz: cannot read \("),
        ("a.jsonl.gz", b"\x1f\x8b\x08\x00 not really gzip", r"a\.jsonl\.gz:1: cannot read \("),
        ("a.json.gz", b"\x1f\x8b\x08\x00 not really gzip", r"a\.json\.gz: cannot read \("),
    ],
)
def test_corrupt_files_are_one_line_input_errors(
    tmp_path: Path, name: str, content: bytes | str, expected: str
) -> None:
    path = tmp_path / name
    if content == "damaged":
        _damaged_parquet(path)
    else:
        path.write_bytes(content)
    with pytest.raises(InputError, match=expected) as err:
        _load(tmp_path, {"name": "a", "adapter": "alpaca", "paths": [name]})
    assert "\n" not in str(err.value)


def test_gzip_files_are_read_and_huge_csv_fields_are_rows_to_reject(tmp_path: Path) -> None:
    import gzip

    with gzip.open(tmp_path / "a.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in ALPACA))
    rows, _ = _load(tmp_path, {"name": "a", "adapter": "alpaca", "paths": ["a.jsonl.gz"]})
    assert [r["source_key"] for r in rows] == ["a.jsonl.gz:1", "a.jsonl.gz:2"]
    with (tmp_path / "big.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, ["instruction", "output"])
        writer.writeheader()
        writer.writerow({"instruction": "small", "output": "ok"})
        writer.writerow({"instruction": "big", "output": "z" * 300_000})  # over csv's 128 KiB field limit
    rows, rejects = _load(
        tmp_path, {"name": "b", "adapter": "alpaca", "paths": ["big.csv"]}, {"max_row_bytes": 100_000}
    )
    assert len(rows) == 1 and [r["reason"] for r in rejects.table().to_pylist()] == ["row_too_large"]


def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their permissions")
    write_jsonl(tmp_path / "a.jsonl", ALPACA)
    (tmp_path / "a.jsonl").chmod(0)
    with pytest.raises(InputError, match=r"a\.jsonl: cannot read \(Permission denied\)"):
        _load(tmp_path, {"name": "a", "adapter": "alpaca", "paths": ["a.jsonl"]})


def test_files_outside_the_recipe_folder_leave_no_machine_path_in_keys(tmp_path: Path) -> None:
    from conftest import alpaca_source, write_jsonl, write_recipe

    from dataset_builder.publishing.pipeline import build
    from dataset_builder.recipe.schema import load_recipe
    from dataset_builder.registry.store import Registry

    elsewhere = tmp_path / "elsewhere"
    for sub in ("x", "y"):
        write_jsonl(
            elsewhere / sub / "train.jsonl", [{"instruction": f"Say {sub} twice.", "output": sub * 2}]
        )
    recipe_dir = tmp_path / "recipe"
    recipe_dir.mkdir()
    pattern = (elsewhere / "*" / "train.jsonl").as_posix()
    recipe = write_recipe(
        recipe_dir, alpaca_source(pattern), publish="[publish]\nmax_rejected_fraction = 1.0"
    )
    result = build(load_recipe(recipe), Registry(tmp_path / "registry"), show_progress=False)
    keys = sorted(
        key
        for split in result.manifest["splits"].values()
        for key in pq.read_table(result.path / split["file"]).column("source_key").to_pylist()
    )
    assert keys == ["x/train.jsonl:1", "y/train.jsonl:1"]
    assert [i["path"] for i in result.manifest["inputs"]] == ["x/train.jsonl", "y/train.jsonl"]

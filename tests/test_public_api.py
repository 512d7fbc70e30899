"""What dataset_builder.api promises the trainer, checked on inputs written by hand."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from dataset_builder.api import ZEPHYR_TEMPLATE, ChatFormat, code_blocks, parses_as_python, read_records
from dataset_builder.errors import InputError

TURN = (
    "Вот функция, которая складывает два числа:\n\n"
    "```python\ndef add(a, b):\n    return a + b\n```\n\n"
    "А так её вызывают: `add(1, 2)`.\n"
)


def test_code_blocks_are_the_code_of_a_turn_only() -> None:
    blocks = code_blocks(TURN)
    joined = "\n".join(blocks)
    assert "def add(a, b):\n    return a + b" in joined
    assert "Вот функция" not in joined and "А так её вызывают" not in joined
    assert code_blocks("Просто текст без кода.") == []


@pytest.mark.parametrize(
    ("text", "python"),
    [("x = 1", True), ("for i in range(3):\n    print(i)", True), ("Hello", False), ("42", False),
     ("apples, pears", False), ("def broken(:", False)],
)  # fmt: skip
def test_parses_as_python(text: str, python: bool) -> None:
    assert parses_as_python(text) is python


def test_read_records_from_local_files(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"q": "1"}\n\n{"q": "2"}\n', encoding="utf-8")
    (tmp_path / "b.csv").write_text("q,r\n3,x\n", encoding="utf-8")
    with gzip.open(tmp_path / "c.json.gz", "wt", encoding="utf-8") as fh:
        json.dump([{"q": "4"}], fh)
    records = read_records(["*.jsonl", "b.csv", "c.json.gz"], tmp_path)
    assert records == [{"q": "1"}, {"q": "2"}, {"q": "3", "r": "x"}, {"q": "4"}]
    with pytest.raises(InputError, match="no file matches"):
        read_records(["missing/*.jsonl"], tmp_path)


def test_zephyr_format_renders_as_the_model_card_shows() -> None:
    fmt = ChatFormat("zephyr", ZEPHYR_TEMPLATE)
    text = fmt.render(
        [{"role": "user", "content": "Привет"}, {"role": "assistant", "content": "Здравствуйте"}]
    )
    assert text == "<|user|>\nПривет</s>\n<|assistant|>\nЗдравствуйте</s>\n"

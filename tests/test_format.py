from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import ROOT, SIMPLE_STAGES, alpaca_source, write_jsonl, write_recipe
from test_stages import _rows, _run

from dataset_builder.chat.templates import BUILTIN_FORMATS
from dataset_builder.chat.tokenizer import load_tokenizer
from dataset_builder.publishing.pipeline import build
from dataset_builder.recipe.schema import load_recipe
from dataset_builder.registry.store import Registry


@pytest.fixture(scope="module")
def zephyr():
    return load_tokenizer("zephyr")


def test_zephyr_tokenizer_is_the_real_one(zephyr) -> None:
    assert zephyr.bos_token_id == 1 and zephyr.eos_token_id == 2 and len(zephyr) == 32000
    assert zephyr("<|user|>\nПривет</s>").input_ids[0] == 1
    assert zephyr("Q</s>").input_ids[-1] == 2  # "</s>" in text is the EOS token, not three pieces


def test_text_equals_apply_chat_template_on_every_sample_row(tmp_path: Path, zephyr) -> None:
    registry = Registry(tmp_path / "reg")
    result = build(load_recipe(ROOT / "recipes" / "sample.toml"), registry, show_progress=False)
    checked = 0
    for split in ("train", "test"):
        for row in pq.read_table(result.path / f"data/{split}-00000-of-00001.parquet").to_pylist():
            assert zephyr.apply_chat_template(row["messages"], tokenize=False) == row["text"]
            prompt = zephyr.apply_chat_template(
                row["messages"][:-1], tokenize=False, add_generation_prompt=True
            )
            assert row["prompt"] == prompt and row["prompt"] + row["completion"] == row["text"]
            assert row["num_tokens"] == len(zephyr(row["text"]).input_ids)
            checked += 1
    assert checked == sum(m["rows"] for m in result.manifest["splits"].values()) > 100
    assert result.manifest["tokens"]["train"]["max"] <= 2048
    card = (result.path / "README.md").read_text(encoding="utf-8")
    assert "## Tokens" in card and "plots/token_lengths.png" in card and "<|assistant|>" in card
    assert (result.path / "plots" / "token_lengths.png").stat().st_size > 1000


@pytest.mark.parametrize("system", ["keep", "none", "empty", "fixed"])
def test_zephyr_rendering_matches_for_every_system_policy(tmp_path: Path, zephyr, system: str) -> None:
    rows = _rows(("Как отсортировать список?", "```python\nsorted(xs)\n```"), ("Q2 ё й", "A2\n\n  indented"))
    rows[1]["messages"].insert(0, {"role": "system", "content": "Ты помощник."})
    rows[1]["messages"] += [{"role": "user", "content": "Ещё?"}, {"role": "assistant", "content": "Да."}]
    extra = {"system_prompt": "Отвечай кратко."} if system == "fixed" else {}
    out, _, _ = _run("format", rows, tmp_path, template="zephyr", system=system, **extra)
    for row in out:
        assert row["text"] == zephyr.apply_chat_template(row["messages"], tokenize=False)
    if system == "empty":
        assert all(r["messages"][0] == {"role": "system", "content": ""} for r in out)


def test_max_tokens_rejects_long_rows(tmp_path: Path) -> None:
    rows = _rows(("short", "answer"), ("long " * 300, "answer"))
    out, rejects, _ = _run("format", rows, tmp_path, tokenizer="zephyr", max_tokens=100)
    assert len(out) == 1 and out[0]["num_tokens"] < 100
    assert rejects.table().to_pylist()[0]["reason"] == "too_many_tokens"


def test_custom_jinja_template_matches_transformers(tmp_path: Path, zephyr) -> None:
    template = "{% for m in messages %}{{ '[' + m['role'] + '] ' + m['content'] + eos_token }}{% endfor %}"
    rows = _rows(("Q", "A"))
    out, _, _ = _run("format", rows, tmp_path, template="jinja", jinja=template)
    assert out[0]["text"] == zephyr.apply_chat_template(
        rows[0]["messages"], chat_template=template, tokenize=False
    )
    assert BUILTIN_FORMATS["zephyr"].render(rows[0]["messages"]) == zephyr.apply_chat_template(
        rows[0]["messages"], tokenize=False
    )


def test_replay_mix_is_recorded_and_deterministic(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "data.jsonl", [{"instruction": f"task {i}", "output": f"answer {i}"} for i in range(40)]
    )
    write_jsonl(
        tmp_path / "base.jsonl", [{"prompt": f"base prompt {i}", "completion": f"c {i}"} for i in range(100)]
    )
    stages = SIMPLE_STAGES.replace(
        '[[stages]]\ntype = "split"',
        """[[stages]]
type = "replay"
ratio = 0.25
seed = 7
[stages.source]
name = "base-replay"
adapter = "prompt_completion"
paths = ["base.jsonl"]
language = "en"

[[stages]]
type = "split\"""",
    )
    recipe = write_recipe(tmp_path, alpaca_source(), stages=stages)
    first = build(load_recipe(recipe), Registry(tmp_path / "r1"), show_progress=False)
    second = build(load_recipe(recipe), Registry(tmp_path / "r2"), show_progress=False)
    assert first.content_hash == second.content_hash
    per_source = {}
    for meta in first.manifest["splits"].values():
        for k, v in meta["per_source"].items():
            per_source[k] = per_source.get(k, 0) + v
    assert per_source == {"src": 40, "base-replay": 10}
    replay = next(s for s in first.manifest["stages"] if s["stage"] == "replay")
    assert replay["counters"]["rows_added"] == 10 and replay["counters"]["seed"] == 7
    assert "## Replay mix" in (first.path / "README.md").read_text(encoding="utf-8")
    manifest = json.loads((first.path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["recipe"]["stages"][3]["source"]["name"] == "base-replay"


@pytest.mark.parametrize("template", ["zephyr", "chatml", "alpaca"])
def test_builtin_templates_built_without_jinja_match_the_jinja_render(template: str) -> None:
    """The stage builds a built-in template's text turn by turn; Jinja renders the template."""
    import itertools

    from dataset_builder.stages import StageContext, StageStats
    from dataset_builder.stages.base import RejectSink
    from dataset_builder.stages.format import Format, FormatConfig

    contents = [
        "",
        "x",
        "  lead\n\ntrail  \n",
        "<|assistant|>\n{{ x }}{% if %}",
        "Привет</s>",
        "\n",
        "a\r\nb\t",
    ]
    stage = Format(FormatConfig(template=template))
    ctx = StageContext("format", StageStats("format"), RejectSink(), Path("."))
    chat = BUILTIN_FORMATS[template]
    checked = 0
    for turns in range(1, 4):
        for roles in itertools.product(["system", "user", "assistant", "tool"], repeat=turns):
            for shift in range(3):
                messages = [
                    {"role": role, "content": contents[(i + 3 * shift) % len(contents)]}
                    for i, role in enumerate(roles)
                ]
                row = stage.process({"messages": [dict(m) for m in messages]}, ctx)
                assert row["text"] == chat.render(messages)
                if roles[-1] == "assistant":
                    assert row["prompt"] == chat.render(messages[:-1], add_generation_prompt=True)
                else:
                    assert row["prompt"] == row["text"]
                assert row["prompt"] + row["completion"] == row["text"]
                checked += 1
    assert checked == 3 * (4 + 16 + 64)

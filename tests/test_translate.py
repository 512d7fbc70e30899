from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import ROOT

from dataset_builder.rows import CANONICAL_SCHEMA, make_row_id
from dataset_builder.stages.base import RejectSink, StageContext, StageStats
from dataset_builder.stages.translate import Translate, TranslateConfig
from dataset_builder.testing import KEEP_REJECTED, alpaca_source, translate_stage, write_recipe
from dataset_builder.translation.checks import latin_share, repetition_loop
from dataset_builder.translation.engine import Engine
from dataset_builder.translation.langid import detect, prose_only
from dataset_builder.translation.segment import is_code_document, protect, segment
from dataset_builder.translation.sentences import join_sentences, split_sentences


def _sample_turns() -> list[str]:
    turns = []
    for name in ("alpaca.jsonl", "chat_rounds.jsonl", "ru_qa.jsonl"):
        for line in (ROOT / "recipes" / "sample_data" / name).read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            for value in rec.values():
                if isinstance(value, str):
                    turns.append(value)
                elif isinstance(value, list):
                    turns.extend(
                        t["content"]
                        for t in value
                        if isinstance(t, dict) and isinstance(t.get("content"), str)
                    )
    return turns


HANDWRITTEN = [
    "Use `sorted(items, key=len)` to sort, then call my_list.append(x) and see os.path.join.",
    "Install it:\n\n```bash\npip install requests\n```\n\nThen run `python main.py --limit 5`.",
    "~~~sql\nSELECT name FROM users WHERE id = 1;\n~~~\nThis returns the user's name.",
    "def snake_case_name(a, b):\n    return a_b if a else b\n",
    "Here is the code:\n\n    for i in range(10):\n        print(i)\n\nIt prints 0 to 9.",
    "SELECT * FROM orders;\nDELETE FROM orders WHERE total < 0;",
    "Format with {name} and %s, read data/input.csv or ~/config.yaml, visit https://example.com/a_b?x=1.",
    'public class Main {\n    public static void main(String[] args) {\n        System.out.println("hi");\n    }\n}',
]


def test_segmentation_is_lossless() -> None:
    for text in HANDWRITTEN + _sample_turns():
        assert "".join(s.text for s in segment(text)) == text


def test_segmenter_finds_code() -> None:
    spans = segment(HANDWRITTEN[1])
    assert [s.kind for s in spans if s.kind != "raw"] == ["prose", "code", "prose"]
    assert spans[2].text == "```bash\npip install requests\n```\n"
    assert (
        is_code_document(HANDWRITTEN[3])
        and is_code_document(HANDWRITTEN[5])
        and is_code_document(HANDWRITTEN[7])
    )
    assert not is_code_document("Return the sum of the list.")
    kinds = [s.kind for s in segment(HANDWRITTEN[4])]
    assert "code" in kinds and segment(HANDWRITTEN[4])[-1].text == "It prints 0 to 9."
    assert protect(HANDWRITTEN[0]).spans == ("`sorted(items, key=len)`", "my_list.append(x)", "os.path.join")
    assert protect(HANDWRITTEN[6]).spans == (
        "{name}",
        "%s",
        "data/input.csv",
        "~/config.yaml",
        "https://example.com/a_b?x=1",
    )


def test_sentences_round_trip() -> None:
    text = "First sentence here. Second one, e.g. with ⟦0⟧ inside!  Third?  "
    sentences, gaps = split_sentences(text)
    assert len(sentences) == 3 and join_sentences(sentences, gaps) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Привет!", "ru"),
        ("Hello!", "en"),
        ("Используйте `sorted(items, key=len)` для сортировки списка по длине", "ru"),
        ("Як відсортувати список у Python? Використовуйте функцію sorted.", "uk"),
        ("Sort the list with `sorted()` and print the result.", "en"),
        ("def f():\n    return 1\n", None),
        ("12345", None),
    ],
)
def test_language_detection_on_prose(text: str, expected: str | None) -> None:
    assert detect(prose_only(text)) == expected


def test_quality_checks() -> None:
    assert repetition_loop("функция " * 40)
    assert not repetition_loop(
        "Эта функция сортирует список и возвращает новый список без изменений исходного. " * 1
    )
    assert latin_share("Это перевод без латиницы") == 0.0
    assert latin_share("This was not translated at all") == 1.0


def test_engine_matches_argostranslate(tiny_argos: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARGOS_PACKAGES_DIR", str(tiny_argos["packages_dir"]))
    import argostranslate.package
    import argostranslate.settings
    import argostranslate.translate

    argostranslate.settings.package_data_dir = tiny_argos["packages_dir"]
    argostranslate.settings.package_dirs = [tiny_argos["packages_dir"]]
    argostranslate.translate.get_installed_languages.cache_clear()
    from dataset_builder.testing import EN_TEXT

    sentences = [*EN_TEXT, "Hello.", "Sort the list by value."]
    ours = Engine(tiny_argos["package"]).translate(sentences)
    theirs = [argostranslate.translate.translate(s, "en", "ru") for s in sentences]
    for mine, argos in zip(ours, theirs, strict=True):
        # argostranslate turns every "_" of its output into a space; ours keeps it.
        assert mine.replace("_", " ") == argos
    assert any(o for o in ours)


def _rows(turns: list[tuple[str, str]], source: str = "en-src", lang: str = "en") -> list[dict]:
    rows = []
    for i, (user, answer) in enumerate(turns):
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        rows.append({"row_id": make_row_id(source, messages), "source": source, "source_key": f"f:{i + 1}",
                     "lang": lang, "messages": messages})  # fmt: skip
    return rows


def _translate(rows: list[dict], tmp_path: Path, tiny_argos: dict, options: dict | None = None, **settings):
    cfg = TranslateConfig(packages_dir=str(tiny_argos["packages_dir"]), cache_path=str(tmp_path / "cache.sqlite"),
                          **settings)  # fmt: skip
    ctx = StageContext(
        "translate", StageStats("translate"), RejectSink(), tmp_path, False, tmp_path, options or {}
    )
    batches = [
        pa.Table.from_pylist(rows[i : i + 50], schema=CANONICAL_SCHEMA) for i in range(0, len(rows), 50)
    ]
    out = [r for b in Translate(cfg).run(iter(batches), ctx) for r in b.to_pylist()]
    return out, ctx


NO_CHECKS = {
    "verify_language": False,
    "min_length_ratio": 0.0,
    "max_length_ratio": 1e9,
    "check_repetition": False,
}


def test_code_survives_byte_identical_on_every_row(tmp_path: Path, tiny_argos: dict) -> None:
    turns = [t for t in HANDWRITTEN + _sample_turns() if t.strip() and detect(prose_only(t)) != "ru"][:600]
    rows = _rows([(turns[i], turns[i + 1]) for i in range(0, len(turns) - 1, 2)])
    out, ctx = _translate(rows, tmp_path, tiny_argos, **NO_CHECKS)
    assert ctx.rejects.count == 0 and len(out) == len(rows)
    by_id = {r["row_id"]: r for r in rows}
    changed = 0
    for row in out:
        source = by_id[row["row_id"]]["messages"]
        assert row["source_messages"] == source and row["source_lang"] == "en" and row["lang"] == "ru"
        for before, after in zip(source, row["messages"], strict=True):
            # Checked here without the stage's verifier: fenced blocks byte-identical and in order,
            # and every line with no plain word in it (nothing a translator could translate) kept.
            assert before["content"].split("```")[1::2] == after["content"].split("```")[1::2]
            plain = re.compile(r"[A-Za-z][a-z]*[.,:;!?]?")
            for line, out_line in zip(
                before["content"].split("\n"), after["content"].split("\n"), strict=True
            ):
                if line.split() and not any(plain.fullmatch(tok) for tok in line.split()):
                    assert out_line == line
            changed += before["content"] != after["content"]
    assert changed > len(out)  # prose really went through the model
    assert ctx.stats.counters["sentences_translated"] > 100


def test_russian_rows_are_routed_not_translated(tmp_path: Path, tiny_argos: dict) -> None:
    russian = (
        "Как отсортировать словарь по значению?",
        "Используйте `sorted(d.items(), key=lambda kv: kv[1])`.",
    )
    english = ("How do I sort a dictionary by value?", "Use `sorted(d.items(), key=lambda kv: kv[1])`.")
    rows = _rows([russian, english]) + _rows([english], source="no-translate")
    out, ctx = _translate(rows, tmp_path, tiny_argos, {"no-translate": {"translate": False}}, **NO_CHECKS)
    assert out[0]["messages"] == rows[0]["messages"] and out[0]["lang"] == "ru"
    assert out[1]["messages"] != rows[1]["messages"] and out[1]["lang"] == "ru"
    assert out[2]["messages"] == rows[2]["messages"] and out[2]["lang"] == "en"
    assert ctx.stats.counters["routed_already_target_language"] == 1
    assert ctx.stats.counters["not_translated_by_source"] == 1


def test_noise_translations_are_rejected_with_reasons(tmp_path: Path, tiny_argos: dict) -> None:
    rows = _rows(
        [
            (
                "Write a Python function that returns the sum of a list of numbers.",
                "Here is the implementation of the algorithm. It handles empty input.",
            )
        ]
        * 3
    )
    out, ctx = _translate(rows, tmp_path, tiny_argos)
    reasons = {r["reason"] for r in ctx.rejects.table().to_pylist()}
    assert not out and reasons <= {"length_ratio", "wrong_language", "untranslated", "repetition_loop"}
    assert reasons


def test_missing_package_skips_or_fails(tmp_path: Path) -> None:
    from dataset_builder.translation.packages import PackageError

    rows = _rows([("Sort a list.", "Use sorted().")])
    empty = {"packages_dir": tmp_path / "none"}
    out, ctx = _translate(rows, tmp_path, empty, if_missing="skip")
    assert out == rows and "no Argos package" in ctx.stats.counters["skipped"]
    with pytest.raises(PackageError, match="models install"):
        _translate(rows, tmp_path, empty)


def test_cache_makes_rebuilds_free(tmp_path: Path, tiny_argos: dict) -> None:
    rows = _rows([(f"Write function number {i} that sorts a list.", "Here is the code.") for i in range(30)])
    first, ctx1 = _translate(rows, tmp_path, tiny_argos, **NO_CHECKS)
    second, ctx2 = _translate(rows, tmp_path, tiny_argos, **NO_CHECKS)
    assert first == second
    assert ctx2.stats.counters["cache_misses"] == 0
    assert ctx2.stats.counters["cache_hits"] == ctx1.stats.counters["cache_misses"]


def test_killed_translation_resumes_from_the_cache(tmp_path: Path, tiny_argos: dict) -> None:
    from synthetic_corpus import write_corpus

    # Enough rows that the kill (after 40 sentences) lands mid-build, and few enough that the
    # rebuild is quick: the property is about what was cached before the kill, not the corpus size.
    write_corpus(tmp_path / "data", rows=250, seed=5)
    cache = tmp_path / "cache.sqlite"
    stage = translate_stage(
        packages_dir=tiny_argos["packages_dir"], cache_path=cache, chunk_sentences=8, beam_size=2
    )
    source = alpaca_source("data/alpaca.jsonl", name="a")
    recipe = write_recipe(tmp_path, source, [stage], name="tr", version="1", publish=KEEP_REJECTED)
    cmd = [
        sys.executable,
        "-m",
        "dataset_builder",
        "--registry",
        str(tmp_path / "reg"),
        "build",
        str(recipe),
        "--quiet",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def cached() -> int:
        try:
            with sqlite3.connect(cache, timeout=5) as db:
                return db.execute("SELECT COUNT(*) FROM translations").fetchone()[0]
        except sqlite3.OperationalError:
            return 0

    deadline = time.monotonic() + 120
    while cached() < 40 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = cached()
    assert before >= 40 and not (tmp_path / "reg" / "tr" / "1").exists()
    from dataset_builder.cli import main

    assert main(["--registry", str(tmp_path / "reg"), "build", str(recipe), "--quiet"]) == 0
    manifest = json.loads((tmp_path / "reg" / "tr" / "1" / "manifest.json").read_text(encoding="utf-8"))
    counters = next(s for s in manifest["stages"] if s["stage"] == "translate")["counters"]
    assert counters["cache_hits"] >= before  # nothing translated before the kill is translated again
    assert counters["sentences_translated"] == counters["cache_misses"]  # only the misses went to the model
    assert counters["package"]["sha256"] == tiny_argos["package"].sha256
    card = (tmp_path / "reg" / "tr" / "1" / "README.md").read_text(encoding="utf-8")
    assert "## Translation" in card and tiny_argos["package"].sha256 in card


def test_models_cli(tmp_path: Path, tiny_argos: dict, capsys: pytest.CaptureFixture[str]) -> None:
    from dataset_builder.cli import main

    assert main(["models", "install", str(tiny_argos["archive"]), "--packages-dir", str(tmp_path / "p")]) == 0
    assert "installed translate-en_ru" in capsys.readouterr().out
    assert main(["models", "list", "--packages-dir", str(tmp_path / "p")]) == 0
    assert "en->ru" in capsys.readouterr().out
    assert (
        main(["models", "install", str(tmp_path / "nope.argosmodel"), "--packages-dir", str(tmp_path / "p")])
        == 2
    )


def test_translating_comments_and_docstrings_keeps_the_code_valid(tmp_path: Path, tiny_argos: dict) -> None:
    import ast

    code = (
        "def double(values):\n"
        '    """Return every value doubled, in a new list."""\n'
        "    # build the result with a comprehension\n"
        "    return [v * 2 for v in values]  # the input list is not changed\n"
    )
    answer = f"Here is the function:\n\n```python\n{code}```\n\nIt returns a new list."
    rows = _rows([("Write a function that doubles the values of a list.", answer)])
    kept, _ = _translate(rows, tmp_path, tiny_argos, translate_comments=False, **NO_CHECKS)
    translated, ctx = _translate(rows, tmp_path, tiny_argos, translate_comments=True, **NO_CHECKS)
    assert code in kept[0]["messages"][1]["content"]  # default: comments and docstrings kept
    out = translated[0]["messages"][1]["content"]
    block = out.split("```python\n", 1)[1].split("```", 1)[0]
    assert block != code
    ast.parse(block)  # whatever the model wrote into comments and docstrings, the code still parses
    for line in ("def double(values):", "    return [v * 2 for v in values]  # "):
        assert line in block
    assert ctx.rejects.count == 0


def test_compute_type_is_chosen_per_device() -> None:
    from dataset_builder.translation.engine import resolve_compute_type

    assert resolve_compute_type("auto", "cuda") == "int8_float16"
    assert resolve_compute_type("auto", "cpu") == "auto"  # CTranslate2's choice, as argostranslate's
    assert resolve_compute_type("float16", "cuda") == "float16"  # an explicit choice is kept

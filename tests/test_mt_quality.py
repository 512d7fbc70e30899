"""The ``mt_quality`` stage through real builds: translators plugged in through the engine door
(a word-for-word dictionary and its inverse, a scrambler, a copier), and a tiny real ru->en Argos
package built offline. Expected scores come from the test's own reading of the translators
(identity round trip: 100; sacrebleu on the test's own back-translation), never from the stage.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import write_jsonl
from test_python_engine import DICTIONARY, ROWS, TRANSLATOR, dictionary_module, dictionary_translate

from dataset_builder.cli import main
from dataset_builder.testing import KEEP_REJECTED, alpaca_source, write_recipe

KEYS = sorted(DICTIONARY)
# Every word to the Russian of the next word: Russian-looking, passes the translate stage's checks,
# and means something else.
SCRAMBLED = {k: DICTIONARY[KEYS[(i + 1) % len(KEYS)]] for i, k in enumerate(KEYS)}
NO_CODE_ROW = {"instruction": "Sort the dictionary by value.", "input": "", "output": "Print the result."}
CODE_ONLY_ROW = {"instruction": "```python\nprint(1)\n```", "input": "", "output": "```python\nprint(2)\n```"}
RUSSIAN_ROW = {"вопрос": "Как отсортировать словарь по значению?", "ответ": "Используйте функцию sorted."}


def back_module(record: bool) -> str:
    """The inverse dictionary, recording every text it is sent into ``sent.jsonl`` beside it."""
    body = dictionary_module()
    if record:
        body += (
            "\n\nimport json as _json\nfrom pathlib import Path as _Path\n_inner = translate\n\n\n"
            "def translate(texts, from_lang, to_lang):\n"
            "    with _Path(__file__).with_name('sent.jsonl').open('a', encoding='utf-8') as fh:\n"
            "        for t in texts:\n"
            "            fh.write(_json.dumps([from_lang, to_lang, t], ensure_ascii=False) + '\\n')\n"
            "    return _inner(texts, from_lang, to_lang)\n"
        )
    return body


FORWARD = {
    "dictionary": dictionary_module(),
    "scrambler": TRANSLATOR.format(words=json.dumps(SCRAMBLED, ensure_ascii=False)),
    "copier": "def translate(texts, from_lang, to_lang):\n    return list(texts)\n",
}


def project(
    folder: Path,
    forward: str,
    quality: dict,
    *,
    rows: list[dict] | None = None,
    back_engine: str = "python:back.py:translate",
    record: bool = True,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "data.jsonl", rows if rows is not None else [*ROWS, NO_CODE_ROW])
    write_jsonl(folder / "ru.jsonl", [RUSSIAN_ROW])
    (folder / "forward.py").write_text(FORWARD[forward], encoding="utf-8")
    (folder / "back.py").write_text(back_module(record), encoding="utf-8")
    sources = [
        alpaca_source(name="en"),
        {"name": "ru", "adapter": "qa", "paths": ["ru.jsonl"], "language": "ru", "translate": False,
         "columns": {"question": "вопрос", "answer": "ответ"}},
    ]  # fmt: skip
    stages = [
        {"type": "translate", "engine": "python:forward.py:translate", "cache_path": "cache.sqlite",
         "verify_language": False, "max_latin_share": 1.0},
        {"type": "mt_quality", "engine": back_engine, "cache_path": "cache.sqlite", **quality},
        {"type": "split", "test_ratio": 0.0},
    ]  # fmt: skip
    return write_recipe(folder, sources, stages, name="q", publish=KEEP_REJECTED)


def build(folder: Path, recipe: Path) -> tuple[list[dict], list[dict], dict]:
    registry = folder / "reg"
    assert main(["--registry", str(registry), "build", str(recipe), "--trust-code", "--quiet"]) == 0
    version = registry / "q" / "1.0.0"
    rows = pq.read_table(version / "data" / "train-00000-of-00001.parquet").to_pylist()
    rejected = pq.read_table(version / "rejected" / "rejected.parquet").to_pylist()
    manifest = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
    return rows, rejected, manifest


def counters(manifest: dict) -> dict:
    return next(s for s in manifest["stages"] if s["stage"] == "mt_quality")["counters"]


def test_dictionary_and_its_inverse_score_high_and_code_is_never_sent(tmp_path: Path) -> None:
    rows = [*ROWS, NO_CODE_ROW, CODE_ONLY_ROW]
    recipe = project(tmp_path, "dictionary", {"min_round_trip_chrf": 90}, rows=rows)
    rows, rejected, manifest = build(tmp_path, recipe)
    assert not rejected and len(rows) == len(ROWS) + 3
    russian = next(r for r in rows if r["source"] == "ru")
    assert russian["mt_quality"] is None  # never translated
    code_only = next(r for r in rows if r["messages"][0]["content"] == CODE_ONLY_ROW["instruction"])
    assert code_only["source_messages"] is not None and code_only["mt_quality"] == {
        "round_trip_chrf": None, "length_ratio": None, "target_script_share": None, "repetition": None,
        "untranslated_share": None, "scored": False,
    }  # fmt: skip
    for row in (r for r in rows if r["source"] == "en" and r is not code_only):
        q = row["mt_quality"]
        assert q["scored"] and q["round_trip_chrf"] == 100.0  # the inverse restores every word
        assert q["target_script_share"] == 1.0 and q["untranslated_share"] == 0.0
        assert 0.5 < q["length_ratio"] < 2.0 and 0.0 <= q["repetition"] < 0.5
    sent = [json.loads(line) for line in (tmp_path / "sent.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sent and all(pair == ["ru", "en"] for *pair, _ in sent)
    texts = "\n".join(t for *_, t in sent)
    for code in (
        "return sum(numbers)",
        "def total",
        "for item in items",
        "evens = [n",
        "sorted(d.items()",
        "show()",
    ):
        assert code not in texts
    c = counters(manifest)
    assert (
        c["rows_scored"] == len(ROWS) + 1 and c["rows_not_translated"] == 1 and c["rows_without_prose"] == 1
    )
    assert c["round_trip_chrf_90_100"] == len(ROWS) + 1 and c["engine"]["module"] == "back.py"
    card = (tmp_path / "reg" / "q" / "1.0.0" / "README.md").read_text(encoding="utf-8")
    assert "round-trip chrF" in card and "`back.py:translate`" in card


def test_a_scrambler_scores_low_and_is_rejected_with_its_score(tmp_path: Path) -> None:
    from sacrebleu.metrics import CHRF

    recipe = project(tmp_path, "scrambler", {"min_round_trip_chrf": 60}, record=False)
    rows, rejected, _ = build(tmp_path, recipe)
    assert [r["source"] for r in rows] == ["ru"]
    assert {r["stage"] + "/" + r["reason"] for r in rejected} == {"mt_quality/low_round_trip_chrf"}
    assert len(rejected) == len(ROWS) + 1
    # The row without code, scored again here: the test's own scramble and inverse, sacrebleu's chrF.
    inverse = {ru: en for en, ru in DICTIONARY.items()}
    turns = [NO_CODE_ROW["instruction"], NO_CODE_ROW["output"]]
    back = "\n".join(dictionary_translate(dictionary_translate(t, SCRAMBLED), inverse) for t in turns)
    expected = CHRF().sentence_score(back, ["\n".join(turns)]).score
    detail = next(
        r["detail"]
        for r in rejected
        if r["messages"][0]["content"] == dictionary_translate(turns[0], SCRAMBLED)
    )
    assert detail == f"round-trip chrF {expected:.1f} below min_round_trip_chrf 60.0"
    assert expected < 40


def test_a_copier_scores_perfectly_and_is_caught_by_the_cheap_signals(tmp_path: Path) -> None:
    recipe = project(tmp_path, "copier", {"min_round_trip_chrf": 60}, record=False)
    rows, rejected, _ = build(tmp_path, recipe)
    assert [r["source"] for r in rows] == ["ru"]
    assert len(rejected) == len(ROWS) + 1
    for r in rejected:
        assert (r["stage"], r["reason"]) == ("mt_quality", "untranslated_prose")
        assert r["detail"].startswith("Cyrillic letters are 0% of the translated prose")
        assert r["detail"].endswith("round-trip chrF 100.0")  # the score alone would have kept it


def test_sample_fraction_scores_a_seeded_sample(tmp_path: Path) -> None:
    many = [
        {
            "instruction": f"Write a function that returns the sum of {i} numbers.",
            "input": "",
            "output": "Here is it.",
        }
        for i in range(40)
    ]

    def scored(folder: Path, quality: dict) -> dict[str, bool]:
        rows, _, _ = build(folder, project(folder, "dictionary", quality, rows=many, record=False))
        out = {}
        for r in rows:
            if r["mt_quality"] is not None:
                q = r["mt_quality"]
                assert q["scored"] == (q["round_trip_chrf"] is not None) and q["target_script_share"] == 1.0
                out[r["row_id"]] = q["scored"]
        return out

    first = scored(tmp_path / "a", {"sample_fraction": 0.5, "seed": 7})
    assert len(first) == 40 and 8 <= sum(first.values()) <= 32
    assert scored(tmp_path / "b", {"sample_fraction": 0.5, "seed": 7}) == first
    assert scored(tmp_path / "c", {"sample_fraction": 0.5, "seed": 8}) != first
    none = scored(tmp_path / "d", {"sample_fraction": 0.0})
    assert not any(none.values()) and not (tmp_path / "d" / "sent.jsonl").exists()


@pytest.fixture(scope="module")
def tiny_ru_en(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dataset_builder.testing import build_tiny_argos_package
    from dataset_builder.translation import packages

    root = tmp_path_factory.mktemp("argos-ru-en")
    archive = build_tiny_argos_package(root / "build", from_code="ru", to_code="en", seed=3)
    packages.install(archive, root / "packages")
    return root / "packages"


def test_round_trip_with_a_tiny_argos_package(tmp_path: Path, tiny_ru_en: Path) -> None:
    recipe = project(tmp_path, "dictionary", {"packages_dir": tiny_ru_en}, back_engine="argos")
    rows, rejected, manifest = build(tmp_path, recipe)
    assert not rejected
    scores = [r["mt_quality"]["round_trip_chrf"] for r in rows if r["source"] == "en"]
    assert len(scores) == len(ROWS) + 1 and all(0.0 <= s < 60 for s in scores)  # random weights
    c = counters(manifest)
    assert c["package"]["from"] == "ru" and c["package"]["to"] == "en"
    assert c["rows_scored"] == len(ROWS) + 1 and c["cache_misses"] > 0
    assert sum(
        v for k, v in c.items() if k.startswith("round_trip_chrf_") and k != "round_trip_chrf_sum"
    ) == len(scores)


def test_check_names_the_back_translation_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = project(tmp_path, "dictionary", {})
    assert main(["--registry", str(tmp_path / "reg"), "check", str(recipe)]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if "this recipe runs code" in line]
    assert len(notes) == 2 and "(mt_quality)" in notes[1] and "back.py" in notes[1]
    assert not (tmp_path / "sent.jsonl").exists()

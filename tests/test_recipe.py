from __future__ import annotations

from pathlib import Path

import pytest
from conftest import alpaca_source, write_recipe

from dataset_builder.errors import RecipeError
from dataset_builder.recipe.schema import load_recipe


def test_sample_recipe_is_valid(sample_recipe: Path) -> None:
    recipe = load_recipe(sample_recipe)
    assert recipe.ref == "python-ru-sample@0.1.0"
    assert [s.type for s in recipe.stages] == [
        "normalize",
        "quality",
        "exact_dedup",
        "near_dedup",
        "translate",
        "mt_quality",
        "near_dedup",
        "split",
        "decontaminate",
        "format",
    ]
    assert recipe.sources[2].columns == {"question": "вопрос", "answer": "ответ"}
    assert not recipe.sources[2].needs_translation and recipe.sources[0].needs_translation


def test_paper_recipe_is_valid() -> None:
    recipe = load_recipe(Path(__file__).parent.parent / "recipes" / "zephyr-python-ru.toml")
    assert {s.hub_id for s in recipe.sources} >= {
        "Vezora/Tested-22k-Python-Alpaca",
        "codefuse-ai/CodeExercise-Python-27k",
        "zelkame/ru-stackoverflow-py",
    }


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("[dataset]\nname='x'\nversion='1'\ncolour='red'\n" + alpaca_source(), "dataset.colour"),
        ("[dataset]\nname='x'\nversion='1'\n" + alpaca_source(extra="bogus = 1"), "sources[0].bogus"),
        (
            "[dataset]\nname='x'\nversion='1'\n"
            + alpaca_source()
            + "[[stages]]\ntype='quality'\nmin_answer_chars='a'\n",
            "stages[0].min_answer_chars",
        ),
        (
            "[dataset]\nname='x'\nversion='1'\n"
            + alpaca_source()
            + "[[stages]]\ntype='translate_everything'\n",
            "stages[0].type",
        ),
        ("[dataset]\nname='x'\nversion='1'\n" + alpaca_source(extra="type = 'ftp'"), "sources[0].type"),
        (
            "[dataset]\nname='x'\nversion='1'\n[[sources]]\nname='s'\nadapter='yaml'\npaths=['a']\n",
            "sources[0].adapter",
        ),
        ("[dataset]\nname='x'\nversion=1\n" + alpaca_source(), "dataset.version"),
        (
            "[dataset]\nname='x'\nversion='1'\n[publish]\nmax_rejected_fraction=2\n" + alpaca_source(),
            "publish.max_rejected_fraction",
        ),
    ],
)
def test_bad_recipe_names_file_and_key(tmp_path: Path, body: str, key: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    message = str(err.value)
    assert str(path) in message and f"'{key}'" in message
    assert "\n" not in message


def test_invalid_toml_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[dataset\nname=", encoding="utf-8")
    with pytest.raises(RecipeError, match=r"broken\.toml: invalid TOML"):
        load_recipe(path)


def test_resolved_recipe_fills_defaults(tmp_path: Path) -> None:
    recipe = load_recipe(write_recipe(tmp_path, alpaca_source()))
    resolved = recipe.resolved()
    quality = next(s for s in resolved["stages"] if s["type"] == "quality")
    assert quality["max_answer_chars"] == 40_000
    assert resolved["publish"]["max_rejected_fraction"] == 0.5

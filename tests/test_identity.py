"""A version's identity, compared before any stage runs: what the user declares decides; what the
toolkit adds or drops since is left to the rows (the build runs and the content hash decides)."""

from __future__ import annotations

import copy
from pathlib import Path

from conftest import ROOT

from dataset_builder.publishing.identity import compare, next_version
from dataset_builder.recipe.schema import load_recipe
from dataset_builder.registry.store import Registry


def test_declared_parts_differ_and_toolkit_settings_are_left_to_the_rows(sample_registry: Registry) -> None:
    recipe = load_recipe(ROOT / "recipes" / "sample.toml")
    manifest = sample_registry.get("python-ru-sample@0.1.0").manifest
    same = compare(recipe, manifest)
    # Built without any Argos package: neither the translate stage nor mt_quality's back-translation
    # loaded one, and none would load now.
    assert same.identical, (same.differences, same.unknown)

    changed = copy.deepcopy(manifest)
    changed["recipe"]["dataset"]["license"] = "mit"
    changed["inputs"][0]["sha256"] = "0" * 64
    found = compare(recipe, changed)
    assert found.differences == [
        "recipe key dataset.license",
        f"input {manifest['inputs'][0]['path']} (sha256 000000000000 then, {manifest['inputs'][0]['sha256'][:12]} now)",
    ]

    older = copy.deepcopy(manifest)
    del older["recipe"]["stages"][0]["unicode_form"]  # a setting added to the toolkit since
    older["recipe"]["stages"][1]["a_setting_since_removed"] = 1
    found = compare(recipe, older)
    assert not found.differences and not found.identical
    assert "recipe stages[0].unicode_form (new setting)" in found.unknown
    assert "recipe stages[1].a_setting_since_removed (new setting)" in found.unknown


def test_the_suggested_version_is_the_next_unpublished_one(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "reg")
    for version in ("0.1.1", "0.1.2"):
        (registry.root / "d" / version).mkdir(parents=True)
        (registry.root / "d" / version / "manifest.json").write_text("{}", encoding="utf-8")
    assert next_version(registry, "d", "0.1.0") == "0.1.3"
    assert next_version(registry, "d", "2.0.0rc1") == "2.0.0rc2"
    assert next_version(registry, "d", "0.1.0+limit5") == "0.1.3"


def test_the_back_translation_model_is_part_of_the_identity(sample_registry: Registry) -> None:
    """The sample's mt_quality stage went without a ru->en package: a rebuild with none installed
    is decided before any stage runs; a manifest naming a package it no longer finds differs."""
    from dataset_builder.publishing.pipeline import build

    recipe = load_recipe(ROOT / "recipes" / "sample.toml")
    again = build(recipe, sample_registry, show_progress=False)
    assert not again.ran and not again.published
    manifest = sample_registry.get("python-ru-sample@0.1.0").manifest
    stage = next(s for s in manifest["stages"] if s["stage"] == "mt_quality")
    assert "package" not in stage["counters"] and stage["counters"]["round_trip_skipped"]
    changed = copy.deepcopy(manifest)
    counters = next(s for s in changed["stages"] if s["stage"] == "mt_quality")["counters"]
    del counters["round_trip_skipped"]
    counters["package"] = {"code": "translate-ru_en", "version": "1.9", "sha256": "ab" * 32}
    assert compare(recipe, changed).differences == [
        "back-translation model (mt_quality: translate-ru_en 1.9 sha256 abababababab then, none installed now)"
    ]

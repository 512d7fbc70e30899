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
    # The sample's mt_quality stage scores with a model of its own: left to the rows.
    assert same.differences == [] and all("mt_quality" in u for u in same.unknown)

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

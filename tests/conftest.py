from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# No Argos package or translation cache of the user's leaks into any test, fixtures included:
# tests install what they need themselves.
_ISOLATED = Path(tempfile.mkdtemp(prefix="dataset-builder-tests-"))
os.environ["DATASET_BUILDER_ARGOS_DIR"] = str(_ISOLATED / "no-argos-packages")
os.environ["DATASET_BUILDER_TRANSLATION_CACHE"] = str(_ISOLATED / "translations.sqlite")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two test processes on two cores: one thread each (torch, OpenMP and the
    # processes they start), not two threads each fighting for the same cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path_factory.getbasetemp() / "hf-cache"
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache / "datasets"))
    monkeypatch.setenv("HF_HOME", str(cache / "home"))
    monkeypatch.delenv("DATASET_BUILDER_REGISTRY", raising=False)


@pytest.fixture
def sample_recipe() -> Path:
    return ROOT / "recipes" / "sample.toml"


def write_jsonl(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


SIMPLE_STAGES = """
[[stages]]
type = "normalize"

[[stages]]
type = "quality"

[[stages]]
type = "exact_dedup"

[[stages]]
type = "split"
test_ratio = 0.2
seed = 1

[[stages]]
type = "format"
"""


def write_recipe(
    folder: Path,
    sources: str,
    *,
    stages: str = SIMPLE_STAGES,
    name: str = "t",
    version: str = "1.0.0",
    publish: str = "",
) -> Path:
    text = f'[dataset]\nname = "{name}"\nversion = "{version}"\n\n{sources}\n{stages}\n{publish}\n'
    path = folder / "recipe.toml"
    path.write_text(text, encoding="utf-8")
    return path


def alpaca_source(path: str = "data.jsonl", name: str = "src", extra: str = "") -> str:
    return f'[[sources]]\nname = "{name}"\nadapter = "alpaca"\npaths = ["{path}"]\n{extra}\n'


@pytest.fixture(scope="session")
def tiny_argos(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny real Argos package (SentencePiece + random Marian -> CTranslate2 + MiniSBD), built
    offline and installed into a packages folder of its own."""
    from dataset_builder.testing import build_tiny_argos_package
    from dataset_builder.translation import packages

    root = tmp_path_factory.mktemp("argos")
    archive = build_tiny_argos_package(root / "build")
    installed = packages.install(archive, root / "packages")
    return {"archive": archive, "packages_dir": root / "packages", "package": installed}


@pytest.fixture(scope="session")
def sample_registry(tmp_path_factory: pytest.TempPathFactory):
    """The bundled sample built once into a registry that tests only read."""
    from dataset_builder.publishing.pipeline import build
    from dataset_builder.recipe.schema import load_recipe
    from dataset_builder.registry.store import Registry

    registry = Registry(tmp_path_factory.mktemp("sample-registry"))
    build(load_recipe(ROOT / "recipes" / "sample.toml"), registry, show_progress=False)
    return registry


@pytest.fixture(scope="session")
def tiny_mistral(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random Mistral-shaped model with the real Zephyr tokenizer, built offline once."""
    from dataset_builder.testing import build_tiny_mistral

    return build_tiny_mistral(tmp_path_factory.mktemp("tiny-mistral"))


@pytest.fixture(scope="session")
def report_version(tmp_path_factory: pytest.TempPathFactory, tiny_argos: dict) -> dict:
    """A version built to fill every section of its report page and Croissant file: translated rows
    (the tiny package, checks relaxed so its output passes), near duplicates, a decontaminated row,
    rows over ``max_tokens``, and hostile markup in row text."""
    from report_data import build_report_version

    return build_report_version(tmp_path_factory.mktemp("report-version"), tiny_argos["packages_dir"])

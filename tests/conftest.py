from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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


# `make test` hands whole files to two processes (pytest-xdist, --dist loadfile) in the order they
# are collected (--no-loadscope-reorder): the files that take longest go first, so neither process
# is left with a long file at the end while the other one waits. Longest first, by the wall time
# each took in a measured `make test` (README); a file not named here keeps its place after them.
LONGEST_FIRST = (
    "test_readme.py",
    "test_ray.py",
    "test_hub.py",
    "test_hub_hostile.py",
    "test_perplexity.py",
    "test_trainer_cli.py",
    "test_benchmark.py",
    "test_humaneval.py",
    "test_crash_safety.py",
    "test_build.py",
    "test_trainer.py",
    "test_translate.py",
    "test_dedup.py",
    "test_decontaminate.py",
    "test_check.py",
    "test_failures.py",
    "test_code_safety.py",
    "test_engine.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's own order kept


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


@contextmanager
def _made_once(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[tuple[Path, bool]]:
    """A folder for what the whole run shares, and whether the caller is to make it: under
    pytest-xdist the first test process to ask makes it while the other waits, then reads it."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the run's own folder
    folder = root / f"shared-{name}"
    with (root / f"shared-{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        made = folder / ".made"
        if made.exists():
            yield folder, False
        else:
            shutil.rmtree(folder, ignore_errors=True)  # a maker that failed half-way
            folder.mkdir()
            yield folder, True
            made.touch()


@pytest.fixture(scope="session")
def tiny_argos(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny real Argos package (SentencePiece + random Marian -> CTranslate2 + MiniSBD), built
    offline once per run and installed into a packages folder of its own, which tests only read."""
    from dataset_builder.testing import build_tiny_argos_package
    from dataset_builder.translation import packages

    with _made_once(tmp_path_factory, "argos") as (root, make):
        if make:
            build_tiny_argos_package(root / "build")
            packages.install(next((root / "build").glob("*.argosmodel")), root / "packages")
    (installed,) = packages.installed(root / "packages")
    archive = next((root / "build").glob("*.argosmodel"))
    return {"archive": archive, "packages_dir": root / "packages", "package": installed}


@pytest.fixture(scope="session")
def sample_registry(tmp_path_factory: pytest.TempPathFactory):
    """The bundled sample built once per run into a registry that tests only read."""
    from dataset_builder.publishing.pipeline import build
    from dataset_builder.recipe.schema import load_recipe
    from dataset_builder.registry.store import Registry

    with _made_once(tmp_path_factory, "sample-registry") as (root, make):
        registry = Registry(root)
        if make:
            build(load_recipe(ROOT / "recipes" / "sample.toml"), registry, show_progress=False)
    return registry


@pytest.fixture(scope="session")
def tiny_mistral(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random Mistral-shaped model with the real Zephyr tokenizer, built offline once per run."""
    from dataset_builder.testing import build_tiny_mistral

    with _made_once(tmp_path_factory, "tiny-mistral") as (root, make):
        if make:
            build_tiny_mistral(root / "model")
    return root / "model"


@pytest.fixture(scope="session")
def report_version(tmp_path_factory: pytest.TempPathFactory, tiny_argos: dict) -> dict:
    """A version built to fill every section of its report page and Croissant file: translated rows
    (the tiny package, checks relaxed so its output passes), near duplicates, a decontaminated row,
    rows over ``max_tokens``, and hostile markup in row text."""
    from report_data import build_report_version

    return build_report_version(tmp_path_factory.mktemp("report-version"), tiny_argos["packages_dir"])

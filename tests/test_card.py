"""The dataset card as the Hub and ``datasets`` read it: YAML checked with their own parsers,
sizes against what ``datasets`` itself computes, no trace of the building machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from conftest import write_jsonl
from huggingface_hub import DatasetCard, DatasetCardData
from huggingface_hub.repocard import metadata_load

from dataset_builder.hub.hub_card import hub_card, local_card
from dataset_builder.publishing.card import size_category
from dataset_builder.publishing.pipeline import build
from dataset_builder.recipe.schema import load_recipe
from dataset_builder.registry.store import Registry
from dataset_builder.testing import KEEP_REJECTED, alpaca_source, translate_stage, write_recipe

REF = "python-ru-sample@0.1.0"
SIZE_CATEGORIES = Path(datasets.__file__).parent / "utils" / "resources" / "size_categories.json"


def _dataset_info(folder: Path) -> datasets.DatasetInfo:
    from datasets.info import DatasetInfosDict

    return DatasetInfosDict.from_dataset_card_data(_card_data(folder))["default"]


def _card_data(folder: Path) -> DatasetCardData:
    meta = metadata_load(folder / "README.md")
    assert meta is not None
    data = DatasetCardData(**meta)
    assert DatasetCard.load(folder / "README.md").data.to_dict() == data.to_dict()
    return data


def test_card_yaml_is_what_the_hub_indexes(sample_registry: Registry) -> None:
    folder = sample_registry.get(REF).path
    data = _card_data(folder)
    rows = {
        f.name.split("-")[0]: pq.ParquetFile(f).metadata.num_rows for f in (folder / "data").glob("*.parquet")
    }
    assert data.pretty_name == "python-ru-sample"
    assert data.license == "apache-2.0"
    assert data.language == ["ru", "en"]
    assert data.task_categories == ["text-generation"]
    assert {"code", "python"} <= set(data.tags)
    assert sum(rows.values()) < 1000 and data.size_categories == ["n<1K"]
    assert set(data.size_categories) <= set(json.loads(SIZE_CATEGORIES.read_text()))

    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs

    configs = MetadataConfigs.from_dataset_card_data(data)
    assert list(configs) == ["default"]
    files = {f["split"]: f["path"] for f in configs["default"]["data_files"]}
    assert set(files) == set(rows) == {"train", "test"}
    assert all((folder / path).is_file() for path in files.values())

    info = DatasetInfosDict.from_dataset_card_data(data)["default"]
    assert {s: info.splits[s].num_examples for s in info.splits} == rows
    assert info.download_size == sum((folder / path).stat().st_size for path in files.values())
    assert info.features == datasets.Features.from_arrow_schema(pq.read_schema(folder / files["train"]))


def test_sizes_match_what_datasets_computes(sample_registry: Registry, tmp_path: Path) -> None:
    folder = sample_registry.get(REF).path
    info = _dataset_info(folder)
    # The same Parquet files with no card: `datasets` measures the splits itself.
    bare = tmp_path / "bare"
    shutil.copytree(folder / "data", bare / "data")
    loaded = datasets.load_dataset(str(bare))
    measured = {s: loaded[s].info.splits[s].num_bytes for s in loaded}
    assert {s: info.splits[s].num_bytes for s in info.splits} == measured
    assert info.dataset_size == sum(measured.values())
    assert info.dataset_size != info.download_size

    # ...and the version folder, card and all, still loads as a plain dataset.
    ds = datasets.load_dataset(str(folder))
    assert {s: ds[s].num_rows for s in ds} == {s: info.splits[s].num_examples for s in info.splits}


def test_card_sections_in_the_hub_layout(sample_registry: Registry) -> None:
    card = (sample_registry.get(REF).path / "README.md").read_text(encoding="utf-8")
    headings = [line for line in card.splitlines() if line.startswith("## ") or line.startswith("### ")]
    expected = [
        "## Dataset Details",
        "## Load this version",
        "## Uses",
        "### Direct Use",
        "### Out-of-Scope Use",
        "## Dataset Structure",
        "## Dataset Creation",
        "### Source Data",
        "### Data Collection and Processing",
        "## Bias, Risks, and Limitations",
        "## Citation",
    ]
    assert headings == expected
    assert "Built after" not in card  # the first version of a name was built after nothing
    assert 'dataset_builder.load("python-ru-sample@0.1.0")' in card
    assert 'datasets.load_dataset("./python-ru-sample/0.1.0")' in card
    # Every source with its licence and the exact file (by name, with its hash) it was read from.
    manifest = sample_registry.get(REF).manifest
    for entry in manifest["inputs"]:
        assert f"`{entry['path']}` | sha256 `{entry['sha256'][:16]}" in card
    assert "| stackoverflow-ru | `sample_data/ru_qa.jsonl` |" in card
    assert "| decontaminate | 137 | 128 | contaminated: 9 |" in card
    assert "**Not translated.**" in card  # no package in the tests: the card says so
    citation = card.split("## Citation", 1)[1]
    assert "eprint        = {2409.09353}" in citation
    assert "Pronin, C. B. and Volosova, A. V. and Ostroukh, A. V. and Strogov, Y. N." in citation
    assert "Overcoming linguistic barriers in code assistants" in citation


def _records(n: int, tag: str) -> list[dict]:
    return [
        {
            "instruction": f"Write a Python function number {i} that returns the square of {tag} {i * 7}.",
            "input": "",
            "output": f"```python\ndef square_{i}(x):\n    return x * x  # {tag} {i}\n```",
        }
        for i in range(n)
    ]


def test_card_shows_no_path_of_the_building_machine(tmp_path: Path) -> None:
    elsewhere = write_jsonl(tmp_path / "elsewhere" / "outside.jsonl", _records(12, "outside"))
    recipe_dir = tmp_path / "recipes"
    write_jsonl(recipe_dir / "inside.jsonl", _records(12, "inside"))
    sources = [
        alpaca_source(str(elsewhere), name="absolute", license="cc-by-nc-sa-4.0"),
        alpaca_source("../elsewhere/outside.jsonl", name="parent", language="ru"),
        alpaca_source("inside.jsonl", name="relative", language="ru"),
    ]
    stages = (
        '[[stages]]\ntype = "translate"\nfrom_lang = "en"\nto_lang = "ru"\nif_missing = "skip"\n'
        f'packages_dir = "{tmp_path / "no-packages-here"}"\n\n'
        '[[stages]]\ntype = "split"\ntest_ratio = 0.3\nseed = 3\n\n[[stages]]\ntype = "format"\n'
    )
    registry = Registry(tmp_path / "registry")
    recipe = write_recipe(recipe_dir, sources, stages=stages, name="paths", version="1.0.0")
    declare = 'version = "1.0.0"\nlicense = "apache-2.0"\n'
    recipe.write_text(
        recipe.read_text(encoding="utf-8").replace('version = "1.0.0"\n', declare), encoding="utf-8"
    )
    first = build(load_recipe(recipe), registry, show_progress=False)
    card = (first.path / "README.md").read_text(encoding="utf-8")

    machine = {str(tmp_path), str(tmp_path.resolve()), str(Path.home()), tempfile.gettempdir(), os.getcwd()}
    for path in sorted(machine):
        assert path not in card, path
    assert "| absolute | `outside.jsonl` |" in card
    assert "| parent | `outside.jsonl` |" in card
    assert "| relative | `inside.jsonl` |" in card
    assert "Skipped: no Argos package installed for en->ru" in card
    assert "Built after" not in card
    # A cc-by-nc-sa source binds the whole version, whatever the recipe declares.
    limits = card.split("## Bias, Risks, and Limitations", 1)[1]
    assert "`cc-by-nc-sa-4.0`: non-commercial use only" in limits
    assert (
        "**Declared licence.** This version is declared `apache-2.0`, yet it includes data under `cc-by-nc-sa-4.0`"
        in limits
    )
    assert "commercial use in particular" in card.split("### Out-of-Scope Use", 1)[1]

    # The next version names the one it was built after, in the details and nowhere as "-".
    write_recipe(recipe_dir, sources, stages=stages, name="paths", version="1.0.1")
    second = build(load_recipe(recipe), registry, show_progress=False)
    card = (second.path / "README.md").read_text(encoding="utf-8")
    assert "- **Built after:** 1.0.0\n" in card and "`-`" not in card


def test_translated_version_says_so_in_metadata_and_limitations(tmp_path: Path, tiny_argos: dict) -> None:
    write_jsonl(tmp_path / "data.jsonl", _records(8, "translated"))
    stages = [
        translate_stage(
            packages_dir=tiny_argos["packages_dir"],
            cache_path=tmp_path / "cache.sqlite",
            beam_size=1,
            max_length_ratio=100.0,
            max_latin_share=1.0,
        )
    ]
    recipe = write_recipe(
        tmp_path,
        alpaca_source(),
        stages=stages,
        name="translated",
        publish=KEEP_REJECTED,
    )
    result = build(load_recipe(recipe), Registry(tmp_path / "registry"), show_progress=False)
    rows = sum(m["rows"] for m in result.manifest["splits"].values())
    data = _card_data(result.path)
    assert "machine-translated" in data.tags
    assert data.language_creators == ["found", "machine-generated"]
    card = (result.path / "README.md").read_text(encoding="utf-8")
    assert f"**Machine translation.** {rows} rows were translated" in card
    assert tiny_argos["package"].sha256 in card
    assert str(tiny_argos["packages_dir"]) not in card and str(tmp_path) not in card


@pytest.mark.parametrize(
    ("rows", "category"),
    [
        (0, "n<1K"),
        (999, "n<1K"),
        (1000, "1K<n<10K"),
        (9999, "1K<n<10K"),
        (10_000, "10K<n<100K"),
        (64_900, "10K<n<100K"),
        (100_000, "100K<n<1M"),
        (1_000_000, "1M<n<10M"),
        (999_999_999_999, "100B<n<1T"),
        (10**12, "n>1T"),
    ],
)
def test_size_categories_are_the_hubs(rows: int, category: str) -> None:
    assert size_category(rows) == category
    assert category in json.loads(SIZE_CATEGORIES.read_text())


def test_hub_card_adds_a_hub_snippet_that_pull_removes(sample_registry: Registry) -> None:
    local = (sample_registry.get(REF).path / "README.md").read_text(encoding="utf-8")
    uploaded = hub_card(local, "org/python-ru", "0.1.0")
    assert 'datasets.load_dataset("org/python-ru", revision="0.1.0")' in uploaded
    assert 'dataset_builder.load("org/python-ru@0.1.0")' in uploaded
    assert DatasetCard(uploaded).data.to_dict() == DatasetCard(local).data.to_dict()
    assert local_card(uploaded) == local
    assert local_card(local) == local
    # A card from before the marked place existed is uploaded unchanged.
    old = local.replace("<!-- dataset-builder:load -->\n", "")
    assert hub_card(old, "org/python-ru", "0.1.0") == old


def test_pushed_card_loads_from_the_hub_and_pull_restores_the_built_card(
    sample_registry: Registry, tmp_path: Path
) -> None:
    from hub_server import HubServer

    local = sample_registry.get(REF)
    built_card = (local.path / "README.md").read_bytes()
    with HubServer() as server:
        env = server.client_env(tmp_path, "hf_card_test_token")

        def cli(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "-m", "dataset_builder", *args], env=env, capture_output=True, text=True
            )

        proc = cli("--registry", str(sample_registry.root), "push", REF, "--repo", "org/cards")
        assert proc.returncode == 0, proc.stderr
        repo = server.state.repos["org/cards"]
        uploaded = repo.commits[repo.tags["0.1.0"]]["README.md"].decode("utf-8")
        assert 'ds = datasets.load_dataset("org/cards", revision="0.1.0")' in uploaded
        assert str(sample_registry.root) not in uploaded
        # The registry's copy is untouched: it is what the manifest hashes.
        assert (local.path / "README.md").read_bytes() == built_card
        assert sample_registry.verify(REF) == []

        fresh = Registry(tmp_path / "fresh")
        proc = cli("--registry", str(fresh.root), "pull", "org/cards@0.1.0", "--as", "python-ru-sample")
        assert proc.returncode == 0, proc.stderr
        assert (fresh.get(REF).path / "README.md").read_bytes() == built_card
        assert fresh.verify(REF) == []

        code = (
            "import json, datasets\n"
            "ds = datasets.load_dataset('org/cards', revision='0.1.0')\n"
            "print(json.dumps({s: ds[s].num_rows for s in ds}))\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        rows = json.loads(proc.stdout.strip().splitlines()[-1])
        assert rows == {s: m["rows"] for s, m in local.manifest["splits"].items()}


def test_card_features_are_what_datasets_writes() -> None:
    """The card's features, written without importing datasets, against datasets' own."""
    import pyarrow as pa

    from dataset_builder.publishing.features import card_features
    from dataset_builder.rows import MESSAGES_TYPE

    schema = pa.schema(
        [
            ("row_id", pa.string()),
            ("messages", MESSAGES_TYPE),
            ("num_tokens", pa.int32()),
            ("big", pa.uint64()),
            ("score", pa.float64()),
            ("half", pa.float16()),
            ("flag", pa.bool_()),
            ("nothing", pa.null()),
            ("long", pa.large_string()),
            ("blob", pa.binary()),
            ("tags", pa.list_(pa.string())),
            ("grid", pa.list_(pa.list_(pa.int8()))),
            (
                "mt_quality",
                pa.struct([("chrf", pa.float32()), ("spans", pa.list_(pa.struct([("a", pa.int64())])))]),
            ),
            ("when", pa.timestamp("us")),  # not written here: handed to datasets
        ]
    )
    for fields in (schema, pa.schema(list(schema)[:-1])):
        assert card_features(fields) == datasets.Features.from_arrow_schema(fields)._to_yaml_list()

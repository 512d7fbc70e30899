"""croissant.json as Croissant's reference library reads it: `mlcroissant validate` passes, its
records are the published rows, checksums and provenance are the true ones (computed here from the
files, the test's inputs and the installed package), and the file stays out of the version's
identity (verify passes, an identical rebuild is a no-op)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlcroissant as mlc
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataset_builder.publishing.pipeline import build
from dataset_builder.recipe.schema import load_recipe

# mlcroissant's own dependencies warn about their deprecations (rdflib, pandas), not about our data.
pytestmark = [
    pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated"),
    pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index"),
]
MLCROISSANT = Path(sys.executable).parent / "mlcroissant"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _plain(value: Any, prefix: str) -> Any:
    """A record as mlcroissant gives it (ids as keys, text as bytes) -> the row as pyarrow gives it.
    mlcroissant reads a null list of records as one record of nulls, and a null record as a record of
    nulls; both are null in the file."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, dict):
        out = {k.removeprefix(prefix).split("/")[-1]: _plain(v, prefix) for k, v in value.items()}
        return None if all(v is None for v in out.values()) else out
    if isinstance(value, list):
        items = [_plain(v, prefix) for v in value]
        return None if items == [None] else items
    return value


def _records(path: Path, split: str) -> list[dict]:
    dataset = mlc.Dataset(jsonld=str(path))
    return [_plain(dict(r), f"{split}/") for r in dataset.records(split)]


def test_mlcroissant_validates_and_reads_back_the_published_rows(report_version: dict) -> None:
    folder = report_version["path"]
    path = folder / "croissant.json"
    proc = subprocess.run(
        [str(MLCROISSANT), "validate", "--jsonld", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "error" not in proc.stderr.lower()
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    for split, meta in manifest["splits"].items():
        rows = pq.read_table(folder / meta["file"]).to_pylist()
        assert _records(path, split) == rows
        assert any(r["source_messages"] for r in rows) or split == "test"


def test_files_versions_and_provenance_are_the_true_ones(report_version: dict, tiny_argos: dict) -> None:
    folder = report_version["path"]
    doc = json.loads((folder / "croissant.json").read_text(encoding="utf-8"))
    assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.1"
    assert doc["version"] == "1.2.0"
    parquet = sorted(p.relative_to(folder).as_posix() for p in (folder / "data").glob("*.parquet"))
    files = {d["contentUrl"]: d["sha256"] for d in doc["distribution"]}
    assert sorted(files) == parquet
    assert all(files[rel] == _sha256(folder / rel) for rel in parquet)

    # messages: a repeated record of role and content, not a string.
    for record_set in doc["recordSet"]:
        fields = {f["name"]: f for f in record_set["field"]}
        schema = pq.read_schema(folder / f"data/{record_set['name']}-00000-of-00001.parquet")
        assert list(fields) == schema.names
        messages = fields["messages"]
        assert messages["isArray"] is True and "dataType" not in messages
        assert [(s["name"], s["dataType"]) for s in messages["subField"]] == [
            ("role", "sc:Text"),
            ("content", "sc:Text"),
        ]
        assert fields["num_tokens"]["dataType"] == "sc:Integer"

    # Each source's exact input, hashed here from the test's own files.
    derived = {d["sha256"]: d["name"] for d in doc["prov:wasDerivedFrom"]}
    assert derived == {_sha256(report_version["inputs"][0]): "en", _sha256(report_version["inputs"][1]): "ru"}
    activity = doc["prov:wasGeneratedBy"]
    used = {u["sha256"] for u in activity["prov:used"]}
    recipe = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["recipe"]
    canonical = json.dumps(recipe, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    assert hashlib.sha256(canonical.encode()).hexdigest() in used
    assert tiny_argos["package"].sha256 in used
    assert _sha256(report_version["eval"]) in used
    import dataset_builder

    agent = activity["prov:wasAssociatedWith"]
    assert (agent["name"], agent["softwareVersion"]) == ("dataset-builder", dataset_builder.__version__)


def test_the_files_stay_out_of_the_versions_identity(report_version: dict) -> None:
    registry = report_version["registry"]
    ref = report_version["ref"]
    before = registry.get(ref).manifest
    # A rebuild writes a croissant.json and report.html of its own (another build time); same rows,
    # same identity: a no-op, not a conflict.
    again = build(load_recipe(report_version["recipe"]), registry, show_progress=False)
    assert again.published is False and again.content_hash == before["content_hash"]
    assert registry.verify(ref) == []


def test_a_nested_record_column_is_described_field_by_field(report_version: dict, tmp_path: Path) -> None:
    """The `mt_quality` struct (written by translation scoring), set here on a copy of the rows."""
    from dataset_builder.publishing.croissant import write_croissant

    folder = tmp_path / "v"
    shutil.copytree(report_version["path"], folder)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    path = folder / manifest["splits"]["test"]["file"]
    table = pq.read_table(path)
    kind = pa.struct([("round_trip_chrf", pa.float64()), ("scored", pa.bool_())])
    values = [
        None if i == 0 else {"round_trip_chrf": 50.0 + i, "scored": True} for i in range(table.num_rows)
    ]
    pq.write_table(table.append_column("mt_quality", pa.array(values, kind)), path)
    doc = json.loads(write_croissant(folder, manifest).read_text(encoding="utf-8"))
    test_set = next(r for r in doc["recordSet"] if r["name"] == "test")
    quality = next(f for f in test_set["field"] if f["name"] == "mt_quality")
    assert "isArray" not in quality
    assert [(s["name"], s["dataType"]) for s in quality["subField"]] == [
        ("round_trip_chrf", "sc:Float"),
        ("scored", "sc:Boolean"),
    ]
    assert [r["mt_quality"] for r in _records(folder / "croissant.json", "test")] == values


def test_a_python_engine_and_a_hub_source_are_recorded_by_their_hashes(
    report_version: dict, tmp_path: Path
) -> None:
    """A stage that ran a Python engine (the recipe's `engine = "python:MODULE:FUNCTION"`) records it
    as the manifest does: module, function and the module file's sha256."""
    from dataset_builder.publishing.croissant import croissant

    module = tmp_path / "back.py"
    module.write_text("def translate(texts, from_lang, to_lang):\n    return list(texts)\n", encoding="utf-8")
    manifest = json.loads((report_version["path"] / "manifest.json").read_text(encoding="utf-8"))
    engine = {"type": "python", "module": "back.py", "function": "translate", "sha256": _sha256(module)}
    manifest["stages"].append({"stage": "mt_quality", "counters": {"engine": engine}})
    # A Hub source as the manifest records it: the commit its revision resolved to.
    commit = hashlib.sha1(b"a commit").hexdigest()
    manifest["inputs"].append(
        {"source": "hub", "hub_id": "org/data", "revision": "v1", "split": "train", "commit": commit}
    )
    doc = croissant(report_version["path"], manifest)
    entry = next(u for u in doc["prov:wasGeneratedBy"]["prov:used"] if u["sha256"] == _sha256(module))
    assert entry["name"] == "back.py:translate" and "mt_quality" in entry["description"]
    hub = next(d for d in doc["prov:wasDerivedFrom"] if d["name"] == "hub")
    assert hub["url"] == "https://huggingface.co/datasets/org/data" and hub["version"] == commit

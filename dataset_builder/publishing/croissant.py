"""``croissant.json``: the version described in Croissant 1.1 (JSON-LD), with PROV-O provenance.

Written at publish from the manifest and the split files, beside them in the version: the Parquet
file of every split with its sha256, one record set per split whose fields follow the file's Arrow
schema (a list of structs, such as ``messages``, is a repeated field with one sub-field per struct
member, never a string), and where the version came from: each source's exact input (the Hub commit
or the file's sha256), the recipe's hash, the translation packages' hashes and the toolkit's
version. It is derived from the version, not part of what the version is: the content hash covers
the rows alone, so a new toolkit writing a different file never changes a version's identity.
Nothing here depends on how the stages were executed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dataset_builder.hashing import file_sha256

CROISSANT = "croissant.json"
CONFORMS_TO = "http://mlcommons.org/croissant/1.1"

# The @context of Croissant 1.1 (as its reference library writes it), plus PROV-O.
CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "prov": "http://www.w3.org/ns/prov#",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}

CITATION = (
    "Pronin, C. B., Volosova, A. V., Ostroukh, A. V., Strogov, Y. N. (2024). Overcoming linguistic "
    "barriers in code assistants: creating a QLoRA adapter to improve support for Russian-language "
    "code writing instructions. arXiv:2409.09353"
)


def _data_type(kind: pa.DataType) -> str | None:
    """The Croissant data type of an Arrow scalar type (None: not a scalar)."""
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "sc:Text"
    if pa.types.is_boolean(kind):
        return "sc:Boolean"
    if pa.types.is_integer(kind):
        return "sc:Integer"
    if pa.types.is_floating(kind):
        return "sc:Float"
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return "sc:Text"
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return "sc:Date"
    return None


def _is_list(kind: pa.DataType) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind)


def _field(record_set: str, file_id: str, column: str, kind: pa.DataType) -> dict[str, Any]:
    """A record-set field for one column of the file, nested the way the column is."""
    fid = f"{record_set}/{column}"
    source = {"fileObject": {"@id": file_id}, "extract": {"column": column}}
    out: dict[str, Any] = {"@type": "cr:Field", "@id": fid, "name": column}
    element = kind.value_type if _is_list(kind) else kind
    if _is_list(kind):
        out["isArray"] = True
        out["arrayShape"] = "-1"
    if pa.types.is_struct(element):
        # One sub-field per struct member, read out of the column (each element, for a list).
        out["subField"] = [
            {
                "@type": "cr:Field",
                "@id": f"{fid}/{member.name}",
                "name": member.name,
                "dataType": _data_type(member.type) or "sc:Text",
                "source": {**source, "transform": {"jsonPath": member.name}},
            }
            for member in element
        ]
        return out
    if pa.types.is_null(element):
        out["description"] = "every row is null in this version"
    out["dataType"] = _data_type(element) or "sc:Text"
    out["source"] = source
    return out


def _files(folder: Path, manifest: dict[str, Any]) -> list[tuple[str, str, pa.Schema]]:
    """(split, file, schema) of each split, in the manifest's order."""
    out = []
    for split, meta in manifest["splits"].items():
        out.append((split, meta["file"], pq.read_schema(folder / meta["file"])))
    return out


def _sources(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Each exact input a source read: a Hub dataset at a commit, or a file by its sha256."""
    licences = {s["name"]: s.get("license") for s in manifest["recipe"]["sources"]}
    out = []
    for entry in manifest.get("inputs", []):
        name = entry["source"]
        item: dict[str, Any] = {"@type": "prov:Entity", "name": name}
        if entry.get("hub_id"):
            item["@id"] = f"https://huggingface.co/datasets/{entry['hub_id']}"
            item["url"] = item["@id"]
            item["version"] = entry.get("commit") or entry.get("revision") or "main"
            item["description"] = (
                f"Hub dataset {entry['hub_id']}, split {entry.get('split')}, revision "
                f"{entry.get('revision') or 'main'} = commit {entry.get('commit') or 'not recorded'}"
            )
        else:
            item["@id"] = f"sha256:{entry['sha256']}"
            item["sha256"] = entry["sha256"]
            item["contentSize"] = f"{entry['bytes']} B"
            item["description"] = f"file {entry['path']} ({entry.get('format')})"
        if licences.get(name):
            item["license"] = licences[name]
        out.append(item)
    return out


def _packages(counters: Any, found: list[dict[str, Any]]) -> None:
    """Models a stage recorded: an Argos package (``code``, ``from``/``to``) or a Python engine
    (``module``, ``function``), each with the sha256 of what ran."""
    if isinstance(counters, dict):
        if isinstance(counters.get("sha256"), str) and any(k in counters for k in ("code", "from", "module")):
            found.append(counters)
            return
        for value in counters.values():
            _packages(value, found)
    elif isinstance(counters, list):
        for value in counters:
            _packages(value, found)


def _activity(manifest: dict[str, Any]) -> dict[str, Any]:
    used: list[dict[str, Any]] = [
        {
            "@type": "prov:Entity",
            "@id": f"sha256:{manifest['recipe_sha256']}",
            "name": "recipe",
            "sha256": manifest["recipe_sha256"],
            "description": "the resolved recipe (sha256 of its canonical JSON, kept in manifest.json)",
        }
    ]
    seen = set()
    for stage in manifest["stages"]:
        packages: list[dict[str, Any]] = []
        _packages(stage.get("counters", {}), packages)
        for pkg in packages:
            if pkg["sha256"] in seen:
                continue
            seen.add(pkg["sha256"])
            if "module" in pkg:
                name = f"{pkg['module']}:{pkg.get('function', '')}"
                what = f"translation engine (Python module, {pkg.get('type', 'python')})"
            else:
                name = pkg.get("code") or "model"
                what = f"translation package {pkg.get('from', '?')}->{pkg.get('to', '?')}"
            used.append(
                {
                    "@type": "prov:Entity",
                    "@id": f"sha256:{pkg['sha256']}",
                    "name": f"{name} {pkg.get('version') or ''}".strip(),
                    "sha256": pkg["sha256"],
                    "description": f"{what}, used by stage {stage['stage']}",
                }
            )
        for name, info in (stage.get("counters", {}).get("eval_sets") or {}).items():
            hashes = info.get("sha256") if isinstance(info, dict) else None
            for path, sha256 in (hashes or {}).items() if isinstance(hashes, dict) else []:
                used.append(
                    {
                        "@type": "prov:Entity",
                        "@id": f"sha256:{sha256}",
                        "name": f"eval set {name}",
                        "sha256": sha256,
                        "description": f"{path}, compared against by stage {stage['stage']}",
                    }
                )
    tool = manifest["tool"]
    return {
        "@type": "prov:Activity",
        "@id": f"build/{manifest['name']}@{manifest['version']}",
        "name": f"dataset-builder build of {manifest['name']} {manifest['version']}",
        "prov:used": used,
        "prov:wasAssociatedWith": {
            "@type": ["prov:SoftwareAgent", "sc:SoftwareApplication"],
            "@id": f"{tool['name']}@{tool['version']}",
            "name": tool["name"],
            "softwareVersion": tool["version"],
        },
    }


def croissant(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The Croissant JSON-LD document of the version in ``folder`` (its split files written)."""
    distribution = []
    record_sets = []
    for split, rel, schema in _files(folder, manifest):
        file_id = f"parquet/{split}"
        distribution.append(
            {
                "@type": "cr:FileObject",
                "@id": file_id,
                "name": f"{split} split",
                "contentUrl": rel,
                "contentSize": f"{(folder / rel).stat().st_size} B",
                "encodingFormat": "application/x-parquet",
                "sha256": file_sha256(folder / rel),
            }
        )
        record_sets.append(
            {
                "@type": "cr:RecordSet",
                "@id": split,
                "name": split,
                "description": f"the {split} split: {manifest['splits'][split]['rows']} rows",
                "field": [_field(split, file_id, f.name, f.type) for f in schema],
            }
        )
    dataset = manifest["recipe"]["dataset"]
    description = dataset.get("description") or f"{manifest['name']} {manifest['version']}"
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "name": manifest["name"],
        "description": description,
        "conformsTo": CONFORMS_TO,
        "version": manifest["version"],
        "citeAs": CITATION,
        # When it was built: the one part of this file that two builds of the same version differ in.
        "datePublished": manifest["built_at"],
        "keywords": ["code", "python", "instruction tuning", "machine translation"],
        "inLanguage": list(dataset.get("language") or []),
        "identifier": manifest["content_hash"],
        "distribution": distribution,
        "recordSet": record_sets,
        "prov:wasDerivedFrom": _sources(manifest),
        "prov:wasGeneratedBy": _activity(manifest),
    }
    if dataset.get("license"):
        doc["license"] = dataset["license"]
    return doc


def write_croissant(folder: Path, manifest: dict[str, Any]) -> Path:
    path = folder / CROISSANT
    text = json.dumps(croissant(folder, manifest), ensure_ascii=False, indent=2) + "\n"
    path.write_text(text, encoding="utf-8")
    return path

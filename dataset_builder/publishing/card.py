"""The dataset card: ``README.md`` in the Hugging Face dataset-card layout.

The YAML header is what the Hub indexes and what ``datasets.load_dataset`` reads (``configs`` name
the data file of each split, so a folder or a Hub tag loads exactly this version's files). The
Markdown says what the data is, how it was made, what it is for and not for, and its limits.

A card is rendered once, at build, from the manifest alone, and is hashed in the manifest, so the
card never shows anything that only makes sense on the building machine: no absolute paths, no
local registry location. Pushing to the Hub inserts a Hub load snippet at a marked place
(``dataset_builder.hub.hub_card``); pulling removes exactly that insertion, which gives back the card
the manifest hashes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from dataset_builder.publishing.card_markdown import md_counts, md_table, shown_path
from dataset_builder.publishing.card_translation import (
    mt_quality_section,
    translated_rows,
    translation_checks,
    translation_section,
    translator_words,
)
from dataset_builder.publishing.writer import split_file

CARD = "README.md"

PAPER_ARXIV = "2409.09353"
PAPER_BIBTEX = """@misc{pronin2024overcoming,
  title         = {Overcoming linguistic barriers in code assistants: creating a QLoRA adapter to improve support for Russian-language code writing instructions},
  author        = {Pronin, C. B. and Volosova, A. V. and Ostroukh, A. V. and Strogov, Y. N.},
  year          = {2024},
  eprint        = {2409.09353},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2409.09353}
}"""

# Licences whose terms bind everything built from a source under them.
_LICENSE_NOTES = {
    "cc-by-nc-sa-4.0": "non-commercial use only, and anything derived from it must be shared under the same licence",
    "cc-by-nc-4.0": "non-commercial use only",
    "cc-by-sa-4.0": "anything derived from it must be shared under the same licence",
}

_FIELDS = {
    "row_id": "stable id of the row: a hash of its source and content",
    "source": "name of the source (see Source data)",
    "source_key": "where the row lives in its source: `file:line` or `hub_id:split[index]`",
    "lang": "language the text is in: the target language once translated, else the source's",
    "messages": "the conversation: a list of `{role, content}` turns (system, user, assistant)",
    "dup_cluster": "near-duplicate cluster the row belongs to (null if none); a cluster never straddles splits",
    "dup_cluster_size": "rows in that cluster before the duplicates were dropped",
    "text": "the conversation rendered with the chat template (see Chat format)",
    "prompt": "`text` up to and including the last assistant header",
    "completion": "the rest of `text`: the answer a completion-only loss is computed on",
    "num_tokens": "tokens in `text` with the tokenizer named under Tokens (BOS included)",
    "mt_quality": "translation quality of a translated row (null if not translated): round-trip chrF "
    "(null when not in the scored sample), prose length ratio, Cyrillic share, repetition, untranslated "
    "share, scored (see Translation quality)",
}

# Sizes as the Hub names them: ``n<1K`` up to 999 rows, ``1K<n<10K`` from 1,000, and so on.
_SIZE_STEPS = ("1K", "10K", "100K", "1M", "10M", "100M", "1B", "10B", "100B", "1T")

LOAD_HEADING = "## Load this version\n"
LOAD_ANCHOR = "<!-- dataset-builder:load -->\n"


def arrow_nbytes(path: Path) -> int:
    """Uncompressed Arrow bytes of a Parquet file: what ``datasets`` reports as a split's
    ``num_bytes`` (and sums into ``dataset_size``), read one row group at a time."""
    parquet = pq.ParquetFile(path)
    return sum(parquet.read_row_group(i).nbytes for i in range(parquet.num_row_groups))


def size_category(rows: int) -> str:
    for i, step in enumerate(_SIZE_STEPS):
        if rows < 10 ** (3 + i):
            return f"n<{step}" if i == 0 else f"{_SIZE_STEPS[i - 1]}<n<{step}"
    return "n>1T"


def _hub_sources(manifest: dict[str, Any]) -> list[str]:
    return [s["hub_id"] for s in manifest["recipe"]["sources"] if s.get("hub_id")]


def card_metadata(manifest: dict[str, Any], features_yaml: list[dict[str, Any]]) -> dict[str, Any]:
    splits = manifest["splits"]
    ds = manifest["recipe"]["dataset"]
    rows = sum(m["rows"] for m in splits.values())
    translated = translated_rows(manifest) > 0
    tags = ["code", "python", "instruction-tuning", "dataset-builder"]
    if translated:
        tags.append("machine-translated")
    meta: dict[str, Any] = {
        "pretty_name": manifest["name"],
        "license": ds["license"],
        "language": ds["language"],
        "multilinguality": "multilingual" if len(ds["language"]) > 1 else "monolingual",
        "task_categories": ["text-generation"],
        "tags": tags,
        "size_categories": [size_category(rows)],
    }
    if translated:
        meta["language_creators"] = ["found", "machine-generated"]
    if hub := _hub_sources(manifest):
        meta["source_datasets"] = hub
    meta["configs"] = [
        {
            "config_name": "default",
            "default": True,
            "data_files": [{"split": s, "path": split_file(s)} for s in splits],
        }
    ]
    # dataset_size is the data as Arrow in memory, download_size the Parquet files: the Hub and
    # `datasets` show both, and they differ by the compression.
    meta["dataset_info"] = {
        "features": features_yaml,
        "splits": [
            {"name": s, "num_bytes": m["arrow_bytes"], "num_examples": m["rows"]} for s, m in splits.items()
        ],
        "download_size": sum(m["bytes"] for m in splits.values()),
        "dataset_size": sum(m["arrow_bytes"] for m in splits.values()),
    }
    return meta


def _details(manifest: dict[str, Any]) -> list[str]:
    ds = manifest["recipe"]["dataset"]
    splits = manifest["splits"]
    rows = sum(m["rows"] for m in splits.values())
    lines = [
        "## Dataset Details\n",
        f"- **Version:** {manifest['version']} (content hash `{manifest['content_hash']}`)",
    ]
    if manifest.get("previous_version"):
        lines.append(f"- **Built after:** {manifest['previous_version']}")
    lines += [
        f"- **Built:** {manifest['built_at'][:10]} with dataset-builder {manifest['tool']['version']}",
        f"- **Language(s):** {', '.join(ds['language'])}",
        f"- **License:** {ds['license']}",
        f"- **Rows:** {rows} ({md_counts({s: m['rows'] for s, m in splits.items()})})",
        f"- **Method:** [arXiv:{PAPER_ARXIV}](https://arxiv.org/abs/{PAPER_ARXIV})",
        "- **Look at it:** `report.html` (one offline page: what each stage removed and why, translations "
        "beside their originals, near duplicates, decontamination, token lengths, translation quality); "
        "metadata in `croissant.json` (Croissant 1.1, with checksums and provenance)",
        "",
    ]
    return lines


def _load_section(manifest: dict[str, Any]) -> list[str]:
    ref = f"{manifest['name']}@{manifest['version']}"
    folder = f"./{manifest['name']}/{manifest['version']}"
    return [
        LOAD_HEADING,
        LOAD_ANCHOR
        + "With dataset-builder, from a registry that holds this version (built there, or fetched "
        "with `dataset-builder pull ORG/REPO@VERSION`):\n",
        f'```python\nimport dataset_builder\n\nds = dataset_builder.load("{ref}")\n```\n',
        "The version folder is also a plain Hugging Face dataset:\n",
        f'```python\nimport datasets\n\nds = datasets.load_dataset("{folder}")  # run in the registry folder\n```\n',
    ]


def _uses(manifest: dict[str, Any], columns: set[str], licenses: list[str]) -> list[str]:
    splits = manifest["splits"]
    direct = [
        "Supervised fine-tuning (for example QLoRA) of chat models to follow programming instructions, "
        f"in {', '.join(manifest['recipe']['dataset']['language'])}."
    ]
    if {"prompt", "completion"} <= columns:
        direct.append(
            "`text` serves full-sequence loss; `prompt` and `completion` serve completion-only loss; "
            "`messages` can be rendered with any other chat template."
        )
    if "test" in splits:
        grouped = " (near-duplicates never straddle the two)" if "dup_cluster" in columns else ""
        direct.append(
            f"The `test` split is held out from `train`{grouped} and serves perplexity evaluation of "
            "models trained on `train`."
        )
    held_out = ", and `test` is a held-out slice of the same sources" if "test" in splits else ""
    out = [
        f"Measuring whether generated code works: answers were not executed or tested during the "
        f"build{held_out}, so this is no benchmark."
    ]
    if translated_rows(manifest):
        out.append("A reference for translation: machine-translated rows are not checked for accuracy.")
    if any(lic in _LICENSE_NOTES for lic in licenses):
        out.append("Any use the licences under Licensing forbid, commercial use in particular.")
    return [
        "## Uses\n",
        "### Direct Use\n",
        " ".join(direct) + "\n",
        "### Out-of-Scope Use\n",
        "\n".join(f"- {line}" for line in out) + "\n",
    ]


def _type(feature: dict[str, Any]) -> str:
    """A feature's type in words, from its ``dataset_info`` YAML form."""
    if "dtype" in feature:
        return str(feature["dtype"])
    for kind in ("list", "sequence"):
        if kind in feature:
            inner = feature[kind]
            if isinstance(inner, list):
                return f"{kind} of {{{', '.join(f['name'] + ': ' + _type(f) for f in inner)}}}"
            return f"{kind} of {_type(inner) if isinstance(inner, dict) else inner}"
    return "struct"


def _structure(manifest: dict[str, Any], features_yaml: list[dict[str, Any]]) -> list[str]:
    recipe = manifest["recipe"]
    splits = manifest["splits"]
    parts = [
        "## Dataset Structure\n",
        "One row per conversation. Fields:\n",
        md_table(
            ["field", "type", "meaning"],
            [[f"`{f['name']}`", _type(f), _FIELDS.get(f["name"], "-")] for f in features_yaml],
        ),
        "Splits (one Parquet file each, under `data/`):\n",
        md_table(
            ["split", "rows", "per source", "per language"],
            [[s, m["rows"], md_counts(m["per_source"]), md_counts(m["per_lang"])] for s, m in splits.items()],
        ),
    ]
    split = next((st for st in recipe["stages"] if st["type"] == "split"), None)
    if split:
        parts.append(
            f"Rows are assigned to `test` with probability {split['test_ratio']} by a hash (seed "
            f"{split['seed']}) of their `{split['group_column']}` group, or of their row id when they "
            "have none, so a row keeps its split across rebuilds.\n"
        )
    return parts


def _source_rows(manifest: dict[str, Any]) -> list[list[Any]]:
    inputs: dict[str, list[dict[str, Any]]] = {}
    for entry in manifest.get("inputs", []):
        inputs.setdefault(entry["source"], []).append(entry)
    read = manifest.get("rows_read_per_source", {})
    rows = []
    for s in manifest["recipe"]["sources"]:
        if s.get("hub_id"):
            where = f"[{s['hub_id']}](https://huggingface.co/datasets/{s['hub_id']})"
            pinned = []
            for entry in inputs.get(s["name"], []):
                commit = entry.get("commit") or "not recorded"
                pinned.append(f"split `{entry.get('split')}`, revision `{entry.get('revision') or 'main'}` "
                              f"= commit `{commit}`")  # fmt: skip
            what = "; ".join(pinned) or "-"
        else:
            files = inputs.get(s["name"]) or [{"path": p} for p in s.get("paths", [])]
            where = ", ".join(f"`{shown_path(f['path'])}`" for f in files)
            what = ", ".join(f"sha256 `{f['sha256'][:16]}…`" for f in files if f.get("sha256")) or "-"
        rows.append([s["name"], where, what, s["adapter"], s["language"], s.get("license") or "not declared",
                     read.get(s["name"], "-")])  # fmt: skip
    return rows


def _creation(manifest: dict[str, Any]) -> list[str]:
    parts = [
        "## Dataset Creation\n",
        "### Source Data\n",
        md_table(
            ["source", "where", "exact input", "adapter", "language", "licence", "rows read"],
            _source_rows(manifest),
        ),
        "Full sha256 of every input file, and the resolved recipe, are in `manifest.json`.\n",
        "### Data Collection and Processing\n",
        "Stages ran in this order; every row a stage dropped is kept, with its reason, in "
        "`rejected/rejected.parquet`.\n",
        md_table(
            ["stage", "rows in", "rows out", "dropped"],
            [
                [st["stage"], st["rows_in"], st["rows_out"], md_counts(st["dropped"])]
                for st in manifest["stages"]
            ],
        ),
        f"Rejected rows: {manifest['rejected']['rows']}.\n",
    ]
    parts += (
        translation_section(manifest)
        + mt_quality_section(manifest)
        + _replay(manifest)
        + _chat_format(manifest)
    )
    parts += _tokens(manifest)
    return parts


def _replay(manifest: dict[str, Any]) -> list[str]:
    parts = []
    for replay in [st for st in manifest["stages"] if st["stage"].startswith("replay")]:
        c = replay["counters"]
        origin = ", ".join(shown_path(p.strip()) for p in str(c.get("from", "")).split(","))
        parts.append(
            f"#### Replay mix\n\n{c.get('rows_added', 0)} rows from `{origin}` mixed in "
            f"(ratio {c.get('ratio')}, seed {c.get('seed')}), to keep the base model's behaviour.\n"
        )
    return parts


def _chat_format(manifest: dict[str, Any]) -> list[str]:
    template = next((st for st in manifest["recipe"]["stages"] if st["type"] == "format"), None)
    if not template:
        return []
    parts = [
        "#### Chat format\n",
        f"Template `{template['template']}`, system prompt policy `{template['system']}`. The `text` column is "
        "exactly what the model's tokenizer renders with `apply_chat_template(messages, tokenize=False)`; "
        "`prompt` ends with the last assistant header and `completion` is the rest, for completion-only loss.\n",
    ]
    if template["template"] == "zephyr":
        from dataset_builder.chat.templates import ZEPHYR_TEMPLATE

        parts.append("```jinja\n" + ZEPHYR_TEMPLATE + "\n```\n")
    return parts


def _tokens(manifest: dict[str, Any]) -> list[str]:
    if not manifest.get("tokens"):
        return []
    tokenizer = next(
        (st["counters"].get("tokenizer") for st in manifest["stages"] if st["counters"].get("tokenizer")),
        "?",
    )
    parts = [
        f"#### Tokens\n\nCounted with the `{shown_path(str(tokenizer))}` tokenizer on the `text` column "
        "(BOS included).\n",
        md_table(
            ["split", "rows", "total", "mean", "median", "p95", "max"],
            [
                [s, t["rows"], t["total"], t["mean"], t["median"], t["p95"], t["max"]]
                for s, t in manifest["tokens"].items()
            ],
        ),
    ]
    if manifest.get("plots", {}).get("token_lengths"):
        parts.append(f"![Token lengths]({manifest['plots']['token_lengths']})\n")
    return parts


def _limitations(manifest: dict[str, Any], licenses: list[str]) -> list[str]:
    recipe = manifest["recipe"]
    stages = {st["type"]: st for st in recipe["stages"]}
    items = []
    translate = [st for st in manifest["stages"] if st["stage"].startswith("translate")]
    if translated_rows(manifest):
        items.append(
            f"**Machine translation.** {translated_rows(manifest)} rows were translated by "
            f"{translator_words(translate)}: expect literal phrasing, mistranslated technical terms and prose that "
            f"mixes languages. Code was kept byte-identical{translation_checks(stages['translate'])}, "
            + (
                "and the round-trip chrF in `mt_quality` (see Translation quality) flags translations "
                "that do not survive a translation back, but it is a proxy: no check measures whether a "
                "translation is right."
                if any(st["type"] == "mt_quality" for st in recipe["stages"])
                else "but no check measures whether a translation is right."
            )
        )
    elif any("skipped" in st["counters"] for st in translate):
        items.append(
            "**Not translated.** Translation was skipped, so rows of sources meant for translation stay "
            "in their original language (labelled so in `lang`); this version is not the translated corpus."
        )
    notes = sorted({lic for lic in licenses if lic in _LICENSE_NOTES})
    if notes:
        binding = "; ".join(f"`{lic}`: {_LICENSE_NOTES[lic]}" for lic in notes)
        items.append(
            f"**Licences.** Sources under {binding}. A version that includes them is bound by the most "
            "restrictive of their terms as a whole: use it only non-commercially where a source is NC, and "
            "share what you derive from it under the same licence where a source is SA."
        )
        declared = recipe["dataset"]["license"]
        if declared not in notes:
            items.append(
                f"**Declared licence.** This version is declared `{declared}`, yet it includes data under "
                f"{', '.join(f'`{lic}`' for lic in notes)}: those terms apply to it regardless."
            )
    items.append(
        "**Synthetic and scraped data.** Instruction sets of this kind are largely generated by language "
        "models or collected from Q&A sites: answers can be wrong, outdated or insecure, and they carry the "
        "style and biases of the models and people that wrote them. No step filters personal information "
        "beyond what the sources did."
    )
    if "near_dedup" in stages:
        items.append(
            f"**Deduplication is approximate.** Near-duplicates are found by MinHash over word n-grams at "
            f"Jaccard {stages['near_dedup']['threshold']} and verified exactly; paraphrases below the "
            "threshold remain."
        )
    if "decontaminate" in stages:
        dec = stages["decontaminate"]
        against = [e["name"] for e in dec.get("eval_sets", [])] + (
            ["the test split"] if dec.get("test_split") else []
        )
        items.append(
            f"**Decontamination** removed training rows overlapping {', '.join(against) or 'nothing'} "
            f"({_overlap_rule(dec)}, in each set's language: translated rows are compared through their "
            f"original turns too){_removal_rates(manifest)}; benchmarks not listed were not checked."
        )
    fmt = stages.get("format")
    if fmt and fmt.get("max_tokens"):
        items.append(
            f"**Length.** Conversations over {fmt['max_tokens']} tokens were dropped, so long answers are "
            "under-represented."
        )
    return ["## Bias, Risks, and Limitations\n", "\n".join(f"- {item}" for item in items) + "\n"]


def _removal_rates(manifest: dict[str, Any]) -> str:
    """Rows removed per eval set, as a share of the training rows compared."""
    stage = next((st for st in manifest["stages"] if st["stage"].startswith("decontaminate")), None)
    counters = stage["counters"] if stage else {}
    compared = counters.get("rows_compared")
    # In the recipe's order of eval sets (the manifest lists counters by name).
    entry = next((st for st in manifest["recipe"]["stages"] if st["type"] == "decontaminate"), {})
    order = [e["name"] for e in entry.get("eval_sets", [])]
    removed = sorted(
        ((key.split(":", 1)[1], n) for key, n in counters.items() if key.startswith("contaminated:")),
        key=lambda item: (order.index(item[0]) if item[0] in order else len(order), item[0]),
    )
    rates = [f"{name} {n:,} ({100 * n / compared:.2f}%)" for name, n in removed if compared]
    return f"; rows removed of {compared:,} compared: {', '.join(rates)}" if rates else ""


def _overlap_rule(dec: dict) -> str:
    """The decontamination rule in words, from the stage's resolved settings."""
    n = dec.get("ngram")
    if dec["method"] == "copy":
        return (
            f"copies of an eval text: all its words in order with at most 1 + {dec.get('edit_rate')} edits per "
            f"rare word {n}-gram of it the row holds, or any row holding 0.6 of its {n}-grams when "
            f"{dec.get('min_copies')} rows or more hold {dec.get('copy_containment')} of them"
        )
    if dec["method"] == "ngram":
        return f"at least {dec.get('min_overlap')} shared word {n}-grams"
    if dec["method"] == "containment":
        return f"at least {dec.get('threshold')} of an eval text's word {n}-grams found in the row"
    return f"Jaccard at least {dec.get('threshold')} on word {n}-grams"


def _citation() -> list[str]:
    return [
        "## Citation\n",
        "The corpus and the way it is built (code-safe EN->RU translation of synthetic Python instructions, "
        "native Russian Q&A, deduplication, Zephyr chat format) follow this paper:\n",
        f"```bibtex\n{PAPER_BIBTEX}\n```\n",
    ]


def render_card(manifest: dict[str, Any], features_yaml: list[dict[str, Any]]) -> str:
    ds = manifest["recipe"]["dataset"]
    licenses = [s["license"] for s in manifest["recipe"]["sources"] if s.get("license")]
    columns = {f["name"] for f in features_yaml}
    front = yaml.safe_dump(card_metadata(manifest, features_yaml), sort_keys=False, allow_unicode=True)
    parts = [
        f"---\n{front}---\n",
        f"# Dataset Card for {manifest['name']}\n",
        (ds.get("description") or "") + "\n",
        *_details(manifest),
        *_load_section(manifest),
        *_uses(manifest, columns, licenses),
        *_structure(manifest, features_yaml),
        *_creation(manifest),
        *_limitations(manifest, licenses),
        *_citation(),
    ]
    return "\n".join(parts)

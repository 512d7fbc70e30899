"""The dataset card: ``README.md`` with Hub YAML, so ``datasets.load_dataset(folder)`` and the Hub
both read a version as published, and a human reading it learns what the data is and where it
came from."""

from __future__ import annotations

from typing import Any

import yaml

from dataset_builder.writer import split_file

_LICENSE_NOTES = {
    "cc-by-nc-sa-4.0": "non-commercial use only, and derivatives must be shared under the same licence",
    "cc-by-nc-4.0": "non-commercial use only",
}


def card_metadata(manifest: dict[str, Any], features_yaml: list[dict[str, Any]]) -> dict[str, Any]:
    splits = manifest["splits"]
    meta: dict[str, Any] = {
        "license": manifest["recipe"]["dataset"]["license"],
        "language": manifest["recipe"]["dataset"]["language"],
        "pretty_name": manifest["name"],
        "tags": ["code", "python", "instruction-tuning", "dataset-builder"],
        "configs": [
            {
                "config_name": "default",
                "default": True,
                "data_files": [{"split": s, "path": split_file(s)} for s in splits],
            }
        ],
        "dataset_info": {
            "features": features_yaml,
            "splits": [
                {"name": s, "num_bytes": meta["bytes"], "num_examples": meta["rows"]}
                for s, meta in splits.items()
            ],
            "download_size": sum(m["bytes"] for m in splits.values()),
            "dataset_size": sum(m["bytes"] for m in splits.values()),
        },
    }
    return meta


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_card(manifest: dict[str, Any], features_yaml: list[dict[str, Any]]) -> str:
    recipe = manifest["recipe"]
    ds = recipe["dataset"]
    front = yaml.safe_dump(card_metadata(manifest, features_yaml), sort_keys=False, allow_unicode=True)
    splits = manifest["splits"]
    sources = recipe["sources"]
    parts = [
        f"---\n{front}---\n",
        f"# {manifest['name']} {manifest['version']}\n",
        ds.get("description") or "",
        f"\nContent hash: `{manifest['content_hash']}`",
        f"\nBuilt after: `{manifest['previous_version'] or '-'}`\n",
        "## Splits\n",
        _table(
            ["split", "rows", "per source", "per language"],
            [
                [
                    s,
                    m["rows"],
                    ", ".join(f"{k}: {v}" for k, v in m["per_source"].items()) or "-",
                    ", ".join(f"{k}: {v}" for k, v in m["per_lang"].items()) or "-",
                ]
                for s, m in splits.items()
            ],
        ),
        "\n## Sources\n",
        _table(
            ["source", "where", "adapter", "language", "licence"],
            [
                [
                    s["name"],
                    s.get("hub_id") or ", ".join(s.get("paths", [])),
                    s["adapter"],
                    s["language"],
                    s.get("license") or "see source",
                ]
                for s in sources
            ],
        ),
    ]
    notes = sorted({s["license"] for s in sources if s.get("license") in _LICENSE_NOTES})
    if notes:
        parts.append(
            "\nLicensing: "
            + "; ".join(f"`{lic}`: {_LICENSE_NOTES[lic]}" for lic in notes)
            + ". A dataset that mixes sources is bound by the most restrictive licence among them, so this "
            "version as a whole may only be used and shared on those terms."
        )
    parts += [
        "\n## Pipeline\n",
        _table(
            ["stage", "rows in", "rows out", "dropped"],
            [
                [
                    st["stage"],
                    st["rows_in"],
                    st["rows_out"],
                    ", ".join(f"{k}: {v}" for k, v in st["dropped"].items()) or "-",
                ]
                for st in manifest["stages"]
            ],
        ),
        f"\nRejected rows: {manifest['rejected']['rows']} (kept with their reasons in `rejected/`).\n",
    ]
    if manifest.get("tokens"):
        tokenizer = next(
            (st["counters"].get("tokenizer") for st in manifest["stages"] if st["counters"].get("tokenizer")),
            "?",
        )
        parts += [
            f"\n## Tokens\n\nCounted with the `{tokenizer}` tokenizer on the `text` column (BOS included).\n",
            _table(
                ["split", "rows", "total", "mean", "median", "p95", "max"],
                [
                    [s, t["rows"], t["total"], t["mean"], t["median"], t["p95"], t["max"]]
                    for s, t in manifest["tokens"].items()
                ],
            ),
        ]
        if manifest.get("plots", {}).get("token_lengths"):
            parts.append(f"\n![Token lengths]({manifest['plots']['token_lengths']})\n")
    template = next((st for st in recipe["stages"] if st["type"] == "format"), None)
    if template:
        parts += [
            "\n## Chat format\n",
            f"Template `{template['template']}`, system prompt policy `{template['system']}`. The `text` column is "
            "exactly what the model's tokenizer renders with `apply_chat_template(messages, tokenize=False)`; "
            "`prompt` ends with the last assistant header and `completion` is the rest, for completion-only loss.\n",
        ]
        if template["template"] == "zephyr":
            from dataset_builder.chat_templates import ZEPHYR_TEMPLATE

            parts.append("```jinja\n" + ZEPHYR_TEMPLATE + "\n```\n")
    for tr in [st for st in manifest["stages"] if st["stage"].startswith("translate")]:
        c = tr["counters"]
        if "skipped" in c:
            parts.append(
                f"\n## Translation\n\nSkipped: {c['skipped']}. Rows that were to be translated keep their "
                "original language and are labelled with it (see the per-language counts above).\n"
            )
        elif "package" in c:
            pkg = c["package"]
            parts.append(
                f"\n## Translation\n\nArgos package `{pkg['code']}` {pkg['version']} ({pkg['from']}->{pkg['to']}, "
                f"sha256 `{pkg['sha256']}`), beam {c['decode']['beam_size']}, length penalty "
                f"{c['decode']['length_penalty']}, on {c.get('device', '?')}. {c.get('rows_translated', 0)} rows "
                f"translated, {c.get('routed_already_target_language', 0)} already in the target language; "
                f"{c.get('sentences_translated', 0)} sentences sent to the model, {c.get('cache_hits', 0)} taken "
                "from the cache. Code (fenced, indented and bare blocks, inline code, identifiers, paths, URLs) "
                "was kept byte-identical; rows failing the checks are in `rejected/`.\n"
            )
    for replay in [st for st in manifest["stages"] if st["stage"].startswith("replay")]:
        c = replay["counters"]
        parts.append(
            f"\n## Replay mix\n\n{c.get('rows_added', 0)} rows from `{c.get('from')}` mixed in "
            f"(ratio {c.get('ratio')}, seed {c.get('seed')}), to keep the base model's behaviour.\n"
        )
    parts += [
        "\n## Load this exact version\n",
        "```python\nimport dataset_builder\n"
        f'ds = dataset_builder.load("{manifest["name"]}@{manifest["version"]}")\n```\n',
        'or, from this folder, `datasets.load_dataset("<path to this folder>")`.\n',
    ]
    return "\n".join(parts) + "\n"

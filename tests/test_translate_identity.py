"""A translator that changes nothing must leave every row byte-identical: whatever differs, the
translate stage did it (segmenting, placeholders, restoring, joining pieces around code).

Two engines go through a real build: ``identity`` (the benchmark's adversary: every text back as
it came) and one that answers nothing for a sentence holding a placeholder, so that every such
sentence takes the piece-by-piece path, where each piece comes back unchanged. The rows are
written here, one per spacing case the stage got wrong before; the expectation is the source row.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import write_jsonl

from dataset_builder.cli import main
from dataset_builder.testing import KEEP_REJECTED, alpaca_source, translate_stage, version_rows, write_recipe

ROOT = Path(__file__).resolve().parent.parent

# (instruction, input, output)
ROWS = [
    (
        "Implement a simple REST API using Node.js and Express.",
        "",
        "Use `app.get()` and `app.listen()` to serve it.",
    ),
    (
        "Filter this array by type.",
        "",
        "Given [{id: 1, type: 'cat'}, {id: 2, type: 'dog'}], 'type' keeps the cats.",
    ),
    ("How do you send a GET request using JavaScript's Fetch API?", "", "Call fetch() with the URL."),
    ("Print a greeting in C++.", "", "1. Add #include <iostream> at the top, then call std::cout in main."),
    ("Print the time in the format YYYY-MM-DD HH:MM:SS.", "", "Use strftime with '%Y-%m-%d %H:%M:%S', "),
    ("Explain `x` `y` and `z`.", "", "They are `x`, `y`, and `z`: three names."),
]

REFUSE = '''
def refuse_code(texts, from_lang, to_lang):
    """Nothing for a sentence with inline code in it (its placeholder), the text itself otherwise."""
    return ["" if "\\u27e6" in text else text for text in texts]
'''


def _build(tmp_path: Path, engine: str) -> tuple[list[dict], list[dict]]:

    project = tmp_path / engine.replace(":", "_")
    project.mkdir()
    shutil.copy(ROOT / "benchmarks" / "adversaries.py", project / "adversaries.py")
    (project / "refuse.py").write_text(REFUSE, encoding="utf-8")
    write_jsonl(project / "data.jsonl", [{"instruction": i, "input": x, "output": o} for i, x, o in ROWS])
    stages = [translate_stage(engine=engine, cache=False), {"type": "split", "test_ratio": 0.0}]
    write_recipe(project, alpaca_source(), stages, name="identity", publish=KEEP_REJECTED)
    registry = tmp_path / "registry"
    command = ["--registry", str(registry), "build", str(project / "recipe.toml"), "--trust-code", "--quiet"]
    assert main(command) == 0
    return version_rows(registry / "identity" / "1.0.0")


@pytest.mark.parametrize("engine", ["python:adversaries.py:identity", "python:refuse.py:refuse_code"])
def test_an_identity_translator_leaves_every_row_byte_identical(tmp_path: Path, engine: str) -> None:
    published, rejected = _build(tmp_path, engine)
    assert rejected == []
    got = sorted(tuple(m["content"] for m in row["messages"]) for row in published)
    want = sorted((f"{i}\n{x}" if x else i, o) for i, x, o in ROWS)
    assert got == want

"""Adversarial translators through real builds: code is published byte-identical or the row is
rejected as ``code_changed``, never published changed.

The translators are the benchmark's (``benchmarks/adversaries.py``), plugged in through the translate
stage's ``engine = "python:adversaries.py:NAME"`` door like any user's module. The rows are written
here, one per way code has escaped before (trailing comments, comment lines, docstrings, program
output, data labels, YAML, SQL, inline ``std::map`` and ``x++``...), each with the code it holds
written out by hand: the expectation is never computed by the stage or by the benchmark's judge.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from conftest import write_jsonl

from dataset_builder.cli import main
from dataset_builder.testing import code_safety_recipe

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import code_judge  # noqa: E402

# (instruction, input, output, what must reach the published row unchanged: turn 0 is the user's
# (instruction, newline, input), turn 1 the answer). Whole lines are checked as lines.
ROWS: list[tuple[str, str, str, list[tuple[int, str]]]] = [
    (
        "Start a web server on port 8080.",
        "",
        "Create the server, then listen:\n\nserver.listen('8080'); // The web server is now listening on port 8080",
        [(1, "server.listen('8080'); // The web server is now listening on port 8080")],
    ),
    (
        "Compare two strings in JavaScript.",
        "",
        "/**\n * Function to compare two strings and return the result\n */\nfunction cmp(a, b) {\n"
        "  // Implementation\n  return a === b;\n}\n// Output:\n// true",
        [
            (1, " * Function to compare two strings and return the result"),
            (1, "  // Implementation"),
            (1, "// Output:"),
            (1, "// true"),
        ],
    ),
    (
        "Fix the indentation of this function.",
        'def product(nums):\n"""Find product of all numbers in the list"""\n    return 1',
        'def product(nums):\n    """Find product of all numbers in the list"""\n    result = 1\n'
        "    for n in nums:\n        result *= n\n    return result",
        [
            (0, '"""Find product of all numbers in the list"""'),
            (1, '    """Find product of all numbers in the list"""'),
        ],
    ),
    (
        "What will this code output?",
        "for c in 'ABCDE':\n    print(c)",
        "A\nB\nC\nD\nE",
        [(0, "for c in 'ABCDE':"), (1, "A"), (1, "B"), (1, "C"), (1, "D"), (1, "E")],
    ),
    (
        "Write a query that lists the customers of one state.",
        "Table: customer\nState: Texas",
        "SELECT name FROM customer WHERE state = 'Texas';",
        [
            (0, "Table: customer"),
            (0, "State: Texas"),
            (1, "SELECT name FROM customer WHERE state = 'Texas';"),
        ],
    ),
    (
        "Write a workflow file for the build.",
        "",
        "Here is the workflow:\n\nname: my build job\non: push\njobs:\n  build:\n    runs-on: ubuntu-latest",
        [(1, "name: my build job"), (1, "on: push"), (1, "    runs-on: ubuntu-latest")],
    ),
    (
        "List the users with an age, by name.",
        "",
        "Run this query:\n\nselect name from users where age is not null order by name",
        [(1, "select name from users where age is not null order by name")],
    ),
    (
        "Which containers count letters?",
        "",
        "Use a std::map or a Map<Character, Integer>, and x++ while i<nums.length holds.",
        [(1, "std::map"), (1, "Map<Character, Integer>"), (1, "x++"), (1, "i<nums.length")],
    ),
    (
        "Sort these people by age.",
        "{ name: 'Bob', age: 30 }\nemployees (id INT, name VARCHAR(50), salary DECIMAL)",
        "Sort them:\n\n1. int y = x * 2;\n2. people.sort((a, b) => a.age - b.age);",
        [
            (0, "{ name: 'Bob', age: 30 }"),
            (0, "employees (id INT, name VARCHAR(50), salary DECIMAL)"),
            (1, "1. int y = x * 2;"),
            (1, "2. people.sort((a, b) => a.age - b.age);"),
        ],
    ),
    (
        "Check if these two words are anagrams.",
        "listen, silent",
        "They are anagrams: both have the same letters.",
        [(0, "listen, silent")],
    ),
    ("Reverse this string.", "Hello, World!", "Use slicing with a step of -1.", [(0, "Hello, World!")]),
    ("Parse this record into a dictionary.", "John Doe, 30", "Split it on the comma.", [(0, "John Doe, 30")]),
    (
        "Count the words in this text.",
        "The quick brown fox jumps over the lazy dog.",
        "Split the text on spaces and count the parts.",
        [(0, "The quick brown fox jumps over the lazy dog.")],
    ),
    ("Which design pattern does this describe?", "", "Abstract Factory", [(1, "Abstract Factory")]),
    (
        "Which bounds hold in the loop?",
        "",
        "Loop while i <= n, keep a Map<Character, Integer> of [a, b, c] and print 'Don't stop'.",
        [(1, "i <= n"), (1, "Map<Character, Integer>"), (1, "[a, b, c]"), (1, "'Don't stop'")],
    ),
    (
        "Write a function that returns the sum of a list of numbers.",
        "",
        "Here is the code:\n\n```python\ndef total(numbers):\n    return sum(numbers)\n```\n\nIt handles empty input.",
        [(1, "```python"), (1, "def total(numbers):"), (1, "    return sum(numbers)"), (1, "```")],
    ),
]


def _turns(record_messages: list[dict]) -> list[str]:
    return [m["content"] for m in record_messages if m["role"] != "system"]


def _build(tmp_path: Path, adversary: str) -> tuple[list[dict], list[dict]]:
    import pyarrow.parquet as pq

    project = tmp_path / adversary
    project.mkdir()
    shutil.copy(ROOT / "benchmarks" / "adversaries.py", project / "adversaries.py")
    write_jsonl(project / "data.jsonl", [{"instruction": i, "input": x, "output": o} for i, x, o, _ in ROWS])
    from adversaries import ADVERSARIES

    recipe = code_safety_recipe(
        "data.jsonl", name="adversary", engine=f"python:adversaries.py:{ADVERSARIES[adversary].__name__}"
    )
    (project / "recipe.toml").write_text(recipe, encoding="utf-8")
    registry = tmp_path / "registry"
    assert (
        main(["--registry", str(registry), "build", str(project / "recipe.toml"), "--trust-code", "--quiet"])
        == 0
    )
    version = registry / "adversary" / "0.0.1"
    manifest = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
    published = [
        r for s in manifest["splits"].values() for r in pq.read_table(version / s["file"]).to_pylist()
    ]
    rejected = pq.read_table(version / "rejected" / "rejected.parquet").to_pylist()
    return published, rejected


@pytest.mark.parametrize("adversary", ["transliterate", "upper", "curly-quotes", "keywords"])
def test_code_is_published_unchanged_or_rejected(tmp_path: Path, adversary: str) -> None:
    published, rejected = _build(tmp_path, adversary)
    assert len(published) + len(rejected) == len(ROWS)
    by_instruction = {i: n for n, (i, _, _, _) in enumerate(ROWS)}
    seen: set[int] = set()
    escaped: list[str] = []
    for row in rejected:
        first_line = _turns(row["messages"])[0].split("\n")[0]
        seen.add(by_instruction[first_line])
        if row["reason"] != "code_changed":
            escaped.append(f"row {by_instruction[first_line]} rejected as {row['reason']}: {row['detail']}")
    for row in published:
        source, after = _turns(row["source_messages"]), _turns(row["messages"])
        number = by_instruction[source[0].split("\n")[0]]
        seen.add(number)
        for turn, kept in ROWS[number][3]:
            # A whole line stays a whole line; inline code stays somewhere in its turn.
            whole_line = kept in source[turn].split("\n")
            if kept not in (after[turn].split("\n") if whole_line else after[turn]):
                escaped.append(f"row {number} published with {kept!r} changed: {after[turn]!r}")
    assert not escaped, f"{adversary}: " + "\n".join(escaped)
    assert seen == set(range(len(ROWS)))
    # Fenced code never reaches the translator: that row is published whatever the adversary does
    # to its prose (rejecting every row with code is not safety).
    assert any(_turns(r["source_messages"])[0].startswith("Write a function that returns") for r in published)


def test_judge_sees_each_escape_class() -> None:
    """The benchmark's judge keeps every line of the classes that escaped before and lets prose
    be prose; expectations written by hand."""
    cases = {
        "server.listen('8080'); // The web server is now listening on port 8080": "keep",
        "  // Implementation": "keep",
        " * Function to compare two strings and return the result": "keep",
        '"""Find product of all numbers in the list"""': "keep",
        "select name from users where age is not null order by name": "keep",
        "name: my build job": "keep",
        "State: Texas": "keep",
        "2. int y = x * 2;": "keep",
        "i++;  // Include this line to move on": "keep",
        "employees (id INT, name VARCHAR(50), salary DECIMAL)": "keep",
        "E": "keep",
        "The function returns the sum of the list.": "prose",
        "Ingredients:": "prose",
        "Chocolate Chip Cookies": "prose",
    }
    for line, kind in cases.items():
        assert code_judge.judge_lines(line)[0].kind == kind, line
    prose = code_judge.judge_lines(
        "Use a std::map or a Map<Character, Integer>, and x++ while i<nums.length holds."
    )[0]
    assert prose.kind == "prose"
    assert set(prose.inline) == {"std::map", "Map<Character, Integer>", "x++", "i<nums.length"}
    # A docstring line inside a function is kept even when it reads as a sentence.
    lines = code_judge.judge_lines(
        'def f(x):\n    """\n    Return the square of the number given.\n    """\n    return x * x'
    )
    assert [j.kind for j in lines] == ["keep"] * 5

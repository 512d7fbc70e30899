"""Code stays code: one test per kind of code that translation used to touch, checked two ways.

The segmenter must put every code line into a code span (expected lines are written out here by
hand), and the verifier, which shares no code with the segmenter, must notice when any of those
lines is translated. Then the translate stage runs with a segmenter that sees no code at all, to
prove that its gate is the verifier and not the segmenter's own opinion.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_translate import NO_CHECKS, _rows, _translate

from dataset_builder.stages.normalize import normalize_text
from dataset_builder.translation import segment as segment_module
from dataset_builder.translation.segment import Span, segment
from dataset_builder.translation.verify import verify_turn

# (name, turn, lines that are code, a prose line of the turn or None)
CASES = [
    ("ruby", "Check whether a string is empty in Ruby:\n\ndef empty?(s)\n  s.empty?\nend\n",
     ["def empty?(s)", "  s.empty?", "end"], "Check whether a string is empty in Ruby:"),
    ("c", "Here is the program.\n\n#include <stdio.h>\n\nint main()\n{\n    printf(\"hi\\n\");\n    return 0;\n}\n",
     ["#include <stdio.h>", "int main()", "{", "    return 0;", "}"], "Here is the program."),
    ("java", "public class Main {\n    public static void main(String[] args) {\n        System.out.println(1);\n    }\n}",
     ["public class Main {", "    public static void main(String[] args) {", "    }"], None),
    ("cpp-access", "class Point {\npublic:\n    int x;\nprivate:\n    int y;\n};",
     ["public:", "private:", "    int x;"], None),
    ("sql", "Use this query:\n\nSELECT department, COUNT(*)\nFROM employees\nWHERE salary > 50000\nGROUP BY department\nORDER BY department;",
     ["FROM employees", "GROUP BY department", "ORDER BY department;"], "Use this query:"),
    ("flat-python", "def add(a, b):\nreturn a + b\n\nprint(add(1, 2))",
     ["return a + b", "def add(a, b):"], None),
    ("comments", "function f(x) {\n  // double the value of x\n  return x * 2;\n}\n# and a shell comment\nls -la",
     ["  // double the value of x", "# and a shell comment"], None),
    ("json", "The configuration file looks like this:\n\n{\n  \"name\": \"app\",\n  \"debug\": true,\n  \"ports\": [80, 443]\n}",
     ['  "name": "app",', '  "debug": true,'], "The configuration file looks like this:"),
    ("php", "<?php\necho strtoupper('hello world');\n?>", ["<?php", "?>"], None),
    ("output", "The program prints the greeting.\n\nOutput:\nHello, World! How are you today?\n\nThat is all.",
     ["Hello, World! How are you today?"], "That is all."),
    ("expected-output", "Expected output\n\nThe sum is 15", ["The sum is 15"], None),
    ("repl", "Try it in the interpreter:\n\n>>> words = ['a', 'b']\n>>> print(len(words))\nThere are two words here",
     [">>> print(len(words))", "There are two words here"], "Try it in the interpreter:"),
    ("shell-session", "Run it like this:\n\n$ python main.py\nProcessing the input file now\n\nIt takes a second.",
     ["$ python main.py", "Processing the input file now"], "It takes a second."),
    ("diff", "Apply this patch to fix the bug.\n\n--- a/app.py\n+++ b/app.py\n@@ -1,2 +1,2 @@\n-Print the old greeting here\n+Print the new greeting here",
     ["-Print the old greeting here", "+Print the new greeting here"], "Apply this patch to fix the bug."),
    ("traceback", "I get this error when I run it.\n\nTraceback (most recent call last):\n  File \"main.py\", line 3, in <module>\n    print(total)\nNameError: name 'total' is not defined",
     ["NameError: name 'total' is not defined", '  File "main.py", line 3, in <module>'], "I get this error when I run it."),
    ("table", "The table has these rows.\n\n| id | name |\n|----|------|\n| 1  | Ann  |",
     ["| id | name |", "| 1  | Ann  |"], "The table has these rows."),
    ("shell-loop", "Count the files:\n\nfor file in \"$directory\"/*\ndo\n  echo $file\ndone\nls | wc -l\ndu -sh * | sort -hr",
     ['for file in "$directory"/*', "  echo $file", "ls | wc -l", "du -sh * | sort -hr"], "Count the files:"),
    ("cpp-stream", "Fix this:\n\nint main() {\n    std::cout << 'Hello, World!'\n    return 0\n}",
     ["    std::cout << 'Hello, World!'", "    return 0"], None),
    ("ruby-block", "Iterate like this:\n\nnames.each do |name|\n  puts greeting unless name.empty?\nend",
     ["names.each do |name|", "  puts greeting unless name.empty?"], "Iterate like this:"),
    ("java-generics", "Use streams:\n\n    List<Integer> evenNumbers = numbers.stream()\n        .filter(n -> n % 2 == 0)",
     ["    List<Integer> evenNumbers = numbers.stream()"], None),
    ("haskell", "A Haskell version:\n\nremoveVowels :: String -> String\nremoveVowels xs = filter notVowel xs",
     ["removeVowels :: String -> String", "removeVowels xs = filter notVowel xs"], "A Haskell version:"),
    ("sql-lower", "Here is the query:\n\nselect name, count(*)\nfrom employees e\nwhere salary > 1000\ngroup by name",
     ["select name, count(*)", "from employees e", "where salary > 1000", "group by name"], "Here is the query:"),
    ("yaml", "The workflow file:\n\nsteps:\n  - name: Check out the code\n    uses: actions/checkout@v3",
     ["  - name: Check out the code", "    uses: actions/checkout@v3"], "The workflow file:"),
    ("dockerfile", "A Dockerfile:\n\nFROM python:3.11\nRUN pip install -r requirements.txt\nCOPY . /app",
     ["FROM python:3.11", "RUN pip install -r requirements.txt"], None),
    ("makefile", "A Makefile:\n\nall: build\nbuild:\n\tgcc -o app main.c", ["all: build", "\tgcc -o app main.c"], None),
    ("kotlin", "In Kotlin:\n\ndata class User(val name: String, val age: Int)\nfun greet(user: User) = println(user.name)",
     ["data class User(val name: String, val age: Int)"], None),
    ("inline-after-colon", "Translate the following C++ code to Python: #include <iostream>\nint main() { return 0; }",
     ["#include <iostream>", "int main() { return 0; }"], None),
]  # fmt: skip

# Code on the same line as a sentence: the segmenter keeps it, the verifier sees it only through
# its tokens (docs/translation.md, limitations), so only the whole-line case is checked there.
PROSE_LINE_WITH_CODE = {"#include <iostream>"}


def _code_spans(text: str) -> list[str]:
    return [s.text for s in segment(text) if s.kind == "code"]


@pytest.mark.parametrize(("name", "text", "code", "prose"), CASES, ids=[c[0] for c in CASES])
def test_segmenter_keeps_every_kind_of_code(name: str, text: str, code: list[str], prose: str | None) -> None:
    spans = _code_spans(text)
    for line in code:
        assert any(line in span for span in spans), f"{name}: {line!r} was sent to translation"
    if prose is not None:
        prose_text = " ".join(s.text for s in segment(text) if s.kind == "prose")
        assert prose in prose_text, f"{name}: the prose {prose!r} was not translated"


def _translate_words(line: str) -> str:
    """What a model that keeps every protected token does to a line: its plain words become
    Russian, identifiers, operators and literals stay."""
    return re.sub(r"(?<![\w.$@/-])[A-Za-z][a-z]+(?![\w(.])", "слово", line)


@pytest.mark.parametrize(("name", "text", "code", "prose"), CASES, ids=[c[0] for c in CASES])
def test_verifier_sees_any_code_line_translated(
    name: str, text: str, code: list[str], prose: str | None
) -> None:
    for line in code:
        for spoiled_line in {
            _translate_words(line),  # the plain words only: the hard case
            line[: len(line) - len(line.lstrip())] + " ".join("слово" for _ in line.split()),  # everything
        }:
            if spoiled_line == line or (
                line in PROSE_LINE_WITH_CODE and spoiled_line == _translate_words(line)
            ):
                continue
            spoiled = text.replace(line, spoiled_line, 1)
            assert verify_turn(text, spoiled) is not None, (
                f"{name}: {line!r} -> {spoiled_line!r} went unnoticed"
            )
    if prose is not None:
        assert verify_turn(text, text.replace(prose, "Это переведённый текст.", 1)) is None


def test_verifier_reports_the_first_difference() -> None:
    text = "Use this query:\nSELECT name\nFROM users\nWHERE id = 1;"
    found = verify_turn(text, text.replace("FROM users", "ИЗ пользователей"))
    assert found == "line 3: SQL statement changed: 'FROM users' -> 'ИЗ пользователей'"
    assert verify_turn(text, text + "\n") == "line count changed: 4 -> 5"
    c_code = "int a = 1;\n \nint b = 2;"
    assert (
        verify_turn(c_code, c_code.replace("\n \n", "\n\n"))
        == "line 2: blank line inside code changed: ' ' -> ''"
    )
    intro = "Here is the code you asked for.\n \nint b = 2;"
    assert verify_turn(intro, "Вот код, который вы просили.\n\nint b = 2;") is None
    python = 'def f(x):\n    """Double x."""\n    return x * 2\n'
    assert "AST differs" in verify_turn(python, python.replace("x * 2", "x * 3"))
    translated_doc = python.replace("Double x.", "Удвоить x.")
    assert verify_turn(python, translated_doc, translate_comments=True) is None
    assert verify_turn(python, translated_doc.replace("* 2", "*2"), translate_comments=True) is not None


def test_translate_stage_rejects_what_a_blind_segmenter_lets_through(
    tmp_path: Path, tiny_argos: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A segmenter that calls everything prose: the verifier must stop every row with code."""
    from dataset_builder.translation import turns as turns_module

    def blind(text: str) -> list[Span]:
        return [Span("prose", line) for line in text.splitlines(keepends=True)]

    monkeypatch.setattr(turns_module, "segment", blind)
    monkeypatch.setattr(segment_module, "segment", blind)
    with_code = [(text, "Thanks, that helps a lot.") for _, text, _, _ in CASES if _ != "output"]
    code_lines = {text: lines for _, text, lines, _ in CASES if _ != "output"}
    rows = _rows(with_code)
    out, ctx = _translate(rows, tmp_path, tiny_argos, **NO_CHECKS)
    rejected = ctx.rejects.table().to_pylist()
    # A row may come through only where the model's answer left every code line as it was (the
    # stage keeps a piece it could not place around code as its source).
    for row in out:
        source = row["source_messages"][0]["content"]
        kept = row["messages"][0]["content"].split("\n")
        assert all(line in kept for line in code_lines[source]), row["messages"][0]["content"]
    assert len(out) <= 1
    assert len(rejected) + len(out) == len(rows) and {r["reason"] for r in rejected} == {"code_changed"}
    for row in rejected:
        assert row["detail"].startswith("turn 1 (user): ")
        assert row["attempted_messages"] and row["attempted_messages"] != row["messages"]


def test_rows_keep_their_source_and_rejected_rows_their_attempt(tmp_path: Path, tiny_argos: dict) -> None:
    rows = _rows([("Sort a list of numbers in Python for me.", "Call `sorted(values)` and print it.")])
    out, _ = _translate(rows, tmp_path, tiny_argos, **NO_CHECKS)
    assert out[0]["source_messages"] == rows[0]["messages"] and out[0]["source_lang"] == "en"
    assert out[0]["messages"] != rows[0]["messages"] and out[0]["lang"] == "ru"
    # No translation is a hundred times longer than its source: the row is rejected, with both.
    checks = {**NO_CHECKS, "min_length_ratio": 100.0}
    out, ctx = _translate(rows, tmp_path / "strict", tiny_argos, **checks)
    rejected = ctx.rejects.table().to_pylist()
    assert not out and [r["reason"] for r in rejected] == ["length_ratio"]
    assert rejected[0]["messages"] == rows[0]["messages"]
    assert rejected[0]["attempted_messages"][0]["content"] != rows[0]["messages"][0]["content"]


def test_short_rows_in_other_languages_are_identified(tmp_path: Path, tiny_argos: dict) -> None:
    rows = _rows(
        [
            ("Écris une fonction qui inverse une chaîne.", "def rev(s):\n    return s[::-1]"),
            (
                "Schrijf een functie in Python die controleert of een getal een priemgetal is.",
                "Zie hieronder.",
            ),
            ("Write a function that reverses a string.", "def rev(s):\n    return s[::-1]"),
        ]
    )
    out, _ = _translate(rows, tmp_path, tiny_argos, other_languages={"*": "pass"}, **NO_CHECKS)
    assert [r["source_lang"] for r in out] == ["fr", "nl", "en"]
    assert [r["lang"] for r in out] == ["fr", "nl", "ru"]


CODE_WITH_WHITESPACE = (
    "Fix this C code.   \r\n\r\nint main() { \r\n    int x = 1; \r\n \r\n    return x;\t\r\n}\r\n"
)


def test_normalize_changes_prose_only() -> None:
    out = normalize_text(CODE_WITH_WHITESPACE)
    code = "int main() { \r\n    int x = 1; \r\n \r\n    return x;\t\r\n}\r\n"
    assert out.startswith("Fix this C code.\n\n") and out.endswith(code)
    python = "def f(x):\n    return x \n\n\nprint(f(1))  \n"
    assert normalize_text(python) == python
    everything = normalize_text(CODE_WITH_WHITESPACE, normalize_code=True)
    assert "\r" not in everything and "{ \n" not in everything


def test_german_row_is_not_translated_from_english(tmp_path: Path, tiny_argos: dict) -> None:
    german = (
        "Schreiben Sie eine Funktion in Python, die eine Liste von Zahlen sortiert und die Summe zurückgibt.",
        "Verwenden Sie dafür die eingebaute Funktion und geben Sie das Ergebnis auf dem Bildschirm aus.",
    )
    english = ("Write a Python function that sorts a list of numbers and returns their sum.", "Use sorted().")
    rows = _rows([german, english])
    out, ctx = _translate(rows, tmp_path, tiny_argos, **NO_CHECKS)
    rejected = ctx.rejects.table().to_pylist()
    assert [r["reason"] for r in rejected] == ["other_language"] and "'de'" in rejected[0]["detail"]
    assert [r["source_lang"] for r in out] == ["en"]
    out, ctx = _translate(rows, tmp_path / "pass", tiny_argos, other_languages={"de": "pass"}, **NO_CHECKS)
    by_lang = {r["lang"]: r for r in out}
    assert by_lang["de"]["messages"] == rows[0]["messages"] and by_lang["de"]["source_messages"] is None
    assert by_lang["ru"]["source_lang"] == "en"
    assert ctx.stats.counters["other_language:de:pass"] == 1


def test_other_language_translated_with_its_own_package(tmp_path: Path, tiny_argos: dict) -> None:
    from dataset_builder.testing import build_tiny_argos_package
    from dataset_builder.translation import packages

    packages_dir = tmp_path / "packages"
    packages.install(tiny_argos["archive"], packages_dir)
    packages.install(build_tiny_argos_package(tmp_path / "de", from_code="de", seed=1), packages_dir)
    german = (
        "Schreiben Sie eine Funktion in Python, die eine Liste von Zahlen sortiert und die Summe zurückgibt.",
        "Verwenden Sie dafür die eingebaute Funktion und geben Sie das Ergebnis auf dem Bildschirm aus.",
    )
    rows = _rows([german])
    out, ctx = _translate(
        rows, tmp_path, {"packages_dir": packages_dir}, other_languages={"de": "translate"}, **NO_CHECKS
    )
    assert out[0]["source_lang"] == "de" and out[0]["lang"] == "ru"
    assert "package:de" in ctx.stats.counters
    with pytest.raises(Exception, match="fr"):  # a configured package that is missing fails up front
        _translate(rows, tmp_path, tiny_argos, other_languages={"fr": "translate"}, **NO_CHECKS)


def test_build_publishes_code_byte_identical_from_the_source_file(tmp_path: Path, tiny_argos: dict) -> None:
    import pyarrow.parquet as pq
    from conftest import alpaca_source, write_jsonl, write_recipe

    from dataset_builder.publishing.pipeline import build
    from dataset_builder.recipe.schema import load_recipe
    from dataset_builder.registry.store import Registry

    records = [
        {
            "instruction": "Fix the bug in this C program please.  ",
            "input": "",
            "output": CODE_WITH_WHITESPACE,
        },
        {
            "instruction": "Explain what this function does, in detail.",
            "input": "def add(a, b):\n    return a + b \n",
            "output": "It adds two numbers.\n\n```python\nprint(add(1, 2))  \n```\n\nOutput:\n3",
        },
    ]
    write_jsonl(tmp_path / "data.jsonl", records)
    stages = f"""
[[stages]]
type = "normalize"

[[stages]]
type = "translate"
packages_dir = "{tiny_argos["packages_dir"].as_posix()}"
cache = false
verify_language = false
min_length_ratio = 0.0
max_length_ratio = 1000000.0
check_repetition = false

[[stages]]
type = "split"
test_ratio = 0.0

[[stages]]
type = "format"
"""
    recipe = write_recipe(tmp_path, alpaca_source(extra='language = "en"'), stages=stages)
    result = build(load_recipe(recipe), Registry(tmp_path / "registry"), show_progress=False)
    table = pq.read_table(result.path / "data" / "train-00000-of-00001.parquet")
    assert {"source_messages", "source_lang"} <= set(table.column_names)
    rows = sorted(table.to_pylist(), key=lambda r: r["source_key"])
    assert len(rows) == 2 and all(r["lang"] == "ru" and r["source_lang"] == "en" for r in rows)
    for record, row in zip(records, rows, strict=True):
        user = record["instruction"] + ("\n" + record["input"] if record["input"] else "")
        published = {m["role"]: m["content"] for m in row["messages"]}
        # Every code line of the source file is a line of the published row, byte for byte.
        for raw, out in ((user, published["user"]), (record["output"], published["assistant"])):
            code = [
                ln
                for ln in raw.splitlines(keepends=True)
                if ln.startswith(("int", "    ", "}", " \r", "print", "def"))
            ]
            for line in code:
                assert line in out, f"{line!r} did not reach the published row unchanged"
    assert "int main() { \r\n" in rows[0]["messages"][1]["content"]
    assert rows[1]["messages"][1]["content"].endswith("Output:\n3") or rows[1]["messages"][1][
        "content"
    ].endswith("\n3")
    assert (
        pq.read_schema(result.path / "rejected" / "rejected.parquet").get_field_index("attempted_messages")
        >= 0
    )

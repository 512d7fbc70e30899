"""Bring your own translator: ``engine = "python:MODULE:FUNCTION"``, through real builds.

The translators are modules the tests write into the recipe's folder: a word-for-word dictionary
(expected outputs are computed here from the same dictionary, never by the stage), a copier, and
translators that answer wrongly.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from conftest import write_jsonl

from dataset_builder.cli import main
from dataset_builder.testing import KEEP_REJECTED, alpaca_source, write_recipe

# One Russian word per English word, and no two the same: the dictionary can be inverted.
DICTIONARY = {
    "write": "напишите", "a": "одну", "function": "функцию", "that": "которая", "returns": "возвращает",
    "the": "эту", "sum": "сумму", "of": "из", "list": "списка", "numbers": "чисел", "here": "вот",
    "is": "есть", "code": "код", "it": "она", "handles": "обрабатывает", "empty": "пустой", "input": "ввод",
    "sort": "отсортируйте", "dictionary": "словарь", "by": "по", "value": "значению", "and": "и",
    "print": "выведите", "result": "результат", "use": "используйте", "to": "чтобы",
    "filter": "отфильтровать", "even": "чётные", "explain": "объясните", "how": "как", "this": "этот",
    "works": "работает", "what": "что", "prints": "печатает", "each": "каждый", "item": "элемент",
    "in": "в", "call": "вызовите", "then": "затем", "see": "посмотрите", "for": "для",
}  # fmt: skip
assert len(set(DICTIONARY.values())) == len(DICTIONARY)

ROWS = [
    {
        "instruction": "Write a function that returns the sum of a list of numbers.",
        "input": "",
        "output": "Here is the code:\n\n```python\ndef total(numbers):\n    return sum(numbers)\n```\n\n"
        "It handles empty input.",
    },
    {
        "instruction": "Sort the dictionary by value and print the result.",
        "input": "",
        "output": "Use `sorted(d.items(), key=lambda kv: kv[1])` and print the result.",
    },
    {
        "instruction": "Explain how this code works.",
        "input": "for item in items:\n    print(item)",
        "output": "It prints each item in the list.",
    },
    {
        "instruction": "Use a list to filter the even numbers.",
        "input": "",
        "output": "```python\nevens = [n for n in numbers if n % 2 == 0]\n```\n\nThen print the result.",
    },
    {
        "instruction": "Write a function that prints what it returns.",
        "input": "",
        "output": "Call `show()` then see the result.",
    },
]

WORD = re.compile(r"[A-Za-zА-Яа-яЁё]+")


def dictionary_translate(text: str, table: dict[str, str]) -> str:
    """What the dictionary module does, written again here: the test's own expectation."""

    def swap(match: re.Match[str]) -> str:
        word = match.group()
        out = table.get(word.lower(), word)
        return out[:1].upper() + out[1:] if word[:1].isupper() else out

    return WORD.sub(swap, text)


TRANSLATOR = '''
"""Word-for-word dictionary translation, both ways."""
import re

TRANSLATOR_VERSION = "dictionary-1"
WORDS = {words}
BACK = {{ru: en for en, ru in WORDS.items()}}
_WORD = re.compile(r"[A-Za-zА-Яа-яЁё]+")


def _swap(table, match):
    word = match.group()
    out = table.get(word.lower(), word)
    return out[:1].upper() + out[1:] if word[:1].isupper() else out


def translate(texts, from_lang, to_lang):
    table = WORDS if (from_lang, to_lang) == ("en", "ru") else BACK
    return [_WORD.sub(lambda m: _swap(table, m), text) for text in texts]
'''


def dictionary_module() -> str:
    return TRANSLATOR.format(words=json.dumps(DICTIONARY, ensure_ascii=False))


def write_project(folder: Path, module: str, *, version: str = "1.0.0", engine: str | None = None) -> Path:
    """A recipe folder: rows, the translator module ``translator.py``, and a recipe using it."""
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "data.jsonl", ROWS)
    if module:
        (folder / "translator.py").write_text(module, encoding="utf-8")
    stages = [
        {
            "type": "translate",
            "engine": engine or "python:translator.py:translate",
            "cache_path": "cache.sqlite",
        },
        {"type": "split", "test_ratio": 0.0},
    ]
    return write_recipe(folder, alpaca_source(), stages, name="byo", version=version, publish=KEEP_REJECTED)


def run_cli(registry: Path, *args: str) -> int:
    return main(["--registry", str(registry), *args])


def manifest(registry: Path, version: str) -> dict:
    return json.loads((registry / "byo" / version / "manifest.json").read_text(encoding="utf-8"))


def counters(registry: Path, version: str) -> dict:
    return next(s for s in manifest(registry, version)["stages"] if s["stage"] == "translate")["counters"]


def published(registry: Path, version: str) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(registry / "byo" / version / "data" / "train-00000-of-00001.parquet").to_pylist()


def test_dictionary_translator_builds_like_argos_and_is_cached(tmp_path: Path) -> None:
    project, registry = tmp_path / "project", tmp_path / "reg"
    recipe = write_project(project, dictionary_module())
    assert run_cli(registry, "build", str(recipe), "--trust-code", "--quiet") == 0

    rows = {r["source_messages"][0]["content"].split("\n")[0]: r for r in published(registry, "1.0.0")}
    assert len(rows) == len(ROWS)
    for source in ROWS:
        row = rows[source["instruction"]]
        assert row["lang"] == "ru" and row["source_lang"] == "en"
        # A one-sentence instruction is exactly the dictionary's translation.
        first_line = row["messages"][0]["content"].split("\n")[0]
        assert first_line == dictionary_translate(source["instruction"], DICTIONARY)
        answer = row["messages"][-1]["content"]
        for block in re.findall(r"```.*?```", source["output"], re.S) + re.findall(
            r"`[^`]+`", source["output"]
        ):
            assert block in answer  # code went nowhere near the translator
    # Code input kept byte-identical; prose around it translated.
    explain = rows["Explain how this code works."]["messages"][0]["content"]
    assert "for item in items:\n    print(item)" in explain and "Объясните как этот код работает." in explain

    c = counters(registry, "1.0.0")
    sha = hashlib.sha256((project / "translator.py").read_bytes()).hexdigest()
    assert c["engine"] == {
        "type": "python", "module": "translator.py", "function": "translate", "from_recipe": True,
        "sha256": sha, "version": "dictionary-1",
    }  # fmt: skip
    assert "package" not in c and c["cache_misses"] > 0 and c["sentences_translated"] == c["cache_misses"]
    assert manifest(registry, "1.0.0")["recipe"]["stages"][0]["engine"] == "python:translator.py:translate"
    card = (registry / "byo" / "1.0.0" / "README.md").read_text(encoding="utf-8")
    assert "Python translator `translator.py:translate` version `dictionary-1`" in card and sha in card
    assert str(project) not in card

    # Rebuilt: every sentence from the cache.
    write_project(project, "", version="1.0.1")
    assert run_cli(registry, "build", str(recipe), "--trust-code", "--quiet") == 0
    again = counters(registry, "1.0.1")
    assert again["cache_misses"] == 0 and again["cache_hits"] == c["cache_misses"]
    assert published(registry, "1.0.1") == published(registry, "1.0.0")

    # The module's file changed (same declared version): nothing of the old one is served.
    (project / "translator.py").write_text(dictionary_module() + "\n# edited\n", encoding="utf-8")
    write_project(project, "", version="1.0.2")
    assert run_cli(registry, "build", str(recipe), "--trust-code", "--quiet") == 0
    edited = counters(registry, "1.0.2")
    assert edited["cache_hits"] == 0 and edited["cache_misses"] == c["cache_misses"]
    assert edited["engine"]["sha256"] != sha


MARKER = """
from pathlib import Path
Path(__file__).with_name("module-ran").write_text("imported")
"""


def test_recipe_code_runs_only_with_trust_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project, registry = tmp_path / "project", tmp_path / "reg"
    recipe = write_project(project, MARKER + dictionary_module())
    assert run_cli(registry, "build", str(recipe), "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:")
    assert "translator.py" in err and "--trust-code" in err
    assert not (project / "module-ran").exists()  # never imported
    assert not (registry / "byo" / "1.0.0").exists()

    assert run_cli(registry, "check", str(recipe)) == 0
    out = capsys.readouterr().out
    assert "this recipe runs code" in out and "translator.py" in out and "--trust-code" in out
    assert not (project / "module-ran").exists()  # check does not import it either

    # The recipe cannot grant itself the permission.
    text = recipe.read_text(encoding="utf-8")
    recipe.write_text("trust_code = true\n" + text, encoding="utf-8")
    assert run_cli(registry, "build", str(recipe), "--quiet") == 2
    assert "key 'trust_code'" in capsys.readouterr().err
    assert not (project / "module-ran").exists()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("return [t.upper() for t in texts][1:]", r"returned \d+ translations for \d+ texts"),
        ("return [None for t in texts]", "returned NoneType at position 0, not str"),
        ("return '\\n'.join(texts)", "returned str, not a list of str"),
        ("raise RuntimeError('model weights not found\\nsecond line')", "raised RuntimeError: model weights not found"),
        ("return (", "importing translator.py failed: "),
    ],
)  # fmt: skip
def test_a_wrong_answer_fails_the_build_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, expected: str
) -> None:
    project, registry = tmp_path / "project", tmp_path / "reg"
    recipe = write_project(project, f"def translate(texts, from_lang, to_lang):\n    {body}\n")
    assert run_cli(registry, "build", str(recipe), "--trust-code", "--quiet") != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert "python:translator.py:translate" in err and re.search(expected, err), err
    if "importing" not in expected:  # failed on rows read: the build says what it had read
        assert "nothing published" in err
    assert not (registry / "byo" / "1.0.0").exists()


def test_a_copier_meets_the_same_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project, registry = tmp_path / "project", tmp_path / "reg"
    recipe = write_project(project, "def translate(texts, from_lang, to_lang):\n    return list(texts)\n")
    assert run_cli(registry, "build", str(recipe), "--trust-code", "--quiet") == 2
    err = capsys.readouterr().err
    assert f"translate/wrong_language {len(ROWS)}" in err and "no rows survived" in err
    assert not (registry / "byo" / "1.0.0").exists()


def install(site: Path, module: str, source: str, entry_point: str | None) -> None:
    """An installed distribution as pip leaves it: the module and a dist-info folder whose
    entry_points.txt registers ``entry_point`` (``MODULE:FUNCTION``) as a translator."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(source, encoding="utf-8")
    info = site / "byo_translator-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: byo-translator\nVersion: 1.0\n", encoding="utf-8"
    )
    if entry_point:
        (info / "entry_points.txt").write_text(
            f"[dataset_builder.translators]\ndictionary = {entry_point}\n", encoding="utf-8"
        )


def test_a_registered_installed_translator_needs_no_trust_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    install(site, "byo_dictionary_translator", dictionary_module(), "byo_dictionary_translator:translate")
    monkeypatch.syspath_prepend(str(site))
    project, registry = tmp_path / "project", tmp_path / "reg"
    recipe = write_project(project, "", engine="python:byo_dictionary_translator:translate")
    assert run_cli(registry, "check", str(recipe)) == 0
    assert "the installed package 'byo-translator' registers" in capsys.readouterr().out
    assert run_cli(registry, "build", str(recipe), "--quiet") == 0
    engine = counters(registry, "1.0.0")["engine"]
    assert engine["module"] == "byo_dictionary_translator" and engine["from_recipe"] is False
    assert engine["registered_by"] == "byo-translator"
    assert (
        engine["sha256"] == hashlib.sha256((site / "byo_dictionary_translator.py").read_bytes()).hexdigest()
    )
    assert len(published(registry, "1.0.0")) == len(ROWS)
    card = (registry / "byo" / "1.0.0" / "README.md").read_text(encoding="utf-8")
    assert "registered by the installed package `byo-translator`" in card

    # Registered under another function: the name of the module alone grants nothing.
    write_project(project, "", version="1.0.1", engine="python:byo_dictionary_translator:_swap")
    assert run_cli(registry, "build", str(recipe), "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--trust-code" in err and "'byo_dictionary_translator:_swap'" in err
    assert not (registry / "byo" / "1.0.1").exists()


def test_a_registered_package_is_keyed_by_all_its_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataset_builder.translation.python_engine import PythonEngine

    site = tmp_path / "site"
    install(site, "unused", "", "byo_pkg_translator:translate")
    package = site / "byo_pkg_translator"
    package.mkdir()
    (package / "__init__.py").write_text("from .words import translate\n", encoding="utf-8")
    (package / "words.py").write_text(dictionary_module(), encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    engine = PythonEngine("python:byo_pkg_translator:translate", "en", "ru", tmp_path / "p", False)
    first = engine.describe()["sha256"]
    assert first != hashlib.sha256((package / "__init__.py").read_bytes()).hexdigest()
    # Only a file the package imports changed, not __init__.py: the key changes all the same.
    (package / "words.py").write_text(dictionary_module() + "\n# retrained\n", encoding="utf-8")
    again = PythonEngine("python:byo_pkg_translator:translate", "en", "ru", tmp_path / "p", False)
    assert again.describe()["sha256"] != first


def _pyc(folder: Path) -> str:
    import py_compile

    source = folder / "marker_src.py"
    source.write_text(
        MARKER.replace("__file__", repr(str(folder / "x"))) + dictionary_module(), encoding="utf-8"
    )
    py_compile.compile(str(source), cfile=str(folder / "translator.pyc"), doraise=True)
    source.unlink()
    return "python:translator:translate"


def _extension(folder: Path) -> str:
    import importlib.machinery

    (folder / f"translator{importlib.machinery.EXTENSION_SUFFIXES[0]}").write_bytes(b"\x7fELF not really")
    return "python:translator:translate"


def _dotted(folder: Path) -> str:
    (folder / "translator").mkdir()
    (folder / "translator" / "__init__.py").write_text(MARKER, encoding="utf-8")
    (folder / "translator" / "sub.py").write_text(dictionary_module(), encoding="utf-8")
    return "python:translator.sub:translate"


@pytest.mark.parametrize("plant", [_pyc, _extension, _dotted], ids=["pyc", "so", "dotted"])
def test_compiled_or_package_code_in_the_recipe_folder_never_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], plant
) -> None:
    project, registry = tmp_path / "project", tmp_path / "reg"
    project.mkdir()
    engine = plant(project)
    recipe = write_project(project, "", engine=engine)
    # The recipe's folder is importable, as when `python -m dataset_builder` runs from it.
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.syspath_prepend("")
    for flags in ((), ("--trust-code",)):
        assert run_cli(registry, "build", str(recipe), "--quiet", *flags) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error:") and "recipe's folder" in err, err
    assert run_cli(registry, "check", str(recipe)) != 0
    assert "recipe's folder" in capsys.readouterr().err
    assert not (project / "module-ran").exists()
    assert not (registry / "byo" / "1.0.0").exists()


GADGET_ROWS = [{"instruction": "touch", "input": "", "output": "Module ran."}]


@pytest.mark.parametrize(
    "engine", ["python:pty:spawn", "python:os:system", "python:posix:system", "python:subprocess:call"]
)
def test_an_installed_module_name_alone_never_runs_without_trust_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], engine: str
) -> None:
    project, registry = tmp_path / "project", tmp_path / "reg"
    recipe = write_project(project, "", engine=engine)
    # pty.spawn(texts, ...) would run `touch "Module ran."` here.
    write_jsonl(project / "data.jsonl", GADGET_ROWS)
    monkeypatch.chdir(tmp_path)
    assert run_cli(registry, "build", str(recipe), "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert (
        engine in err and "not a translator an installed package registers" in err and "--trust-code" in err
    )
    assert run_cli(registry, "check", str(recipe)) == 0
    assert "build with --trust-code" in capsys.readouterr().out
    assert not (tmp_path / "Module ran.").exists() and not (project / "Module ran.").exists()
    assert not (registry / "byo" / "1.0.0").exists()


def test_check_never_imports_a_parent_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    (site / "byo_parent").mkdir(parents=True)
    (site / "byo_parent" / "__init__.py").write_text(MARKER, encoding="utf-8")
    (site / "byo_parent" / "sub.py").write_text(dictionary_module(), encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    project, registry = tmp_path / "project", tmp_path / "reg"
    recipe = write_project(project, "", engine="python:byo_parent.sub:translate")
    assert run_cli(registry, "check", str(recipe)) == 0
    assert "build with --trust-code" in capsys.readouterr().out
    assert run_cli(registry, "build", str(recipe), "--quiet") == 2
    assert "--trust-code" in capsys.readouterr().err
    assert not (site / "byo_parent" / "module-ran").exists()
    assert not (registry / "byo" / "1.0.0").exists()


def test_code_of_the_working_directory_or_registered_there_is_the_recipes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    work, project, registry = tmp_path / "work", tmp_path / "project", tmp_path / "reg"
    # A module and a dist-info that registers it, both in the working directory: '' on sys.path.
    install(work, "byo_cwd_translator", MARKER + dictionary_module(), "byo_cwd_translator:translate")
    recipe = write_project(project, "", engine="python:byo_cwd_translator:translate")
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend("")
    assert run_cli(registry, "build", str(recipe), "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "working directory" in err and "--trust-code" in err, err
    assert not (work / "module-ran").exists()

    # A dist-info in the recipe's folder registering a standard module registers nothing.
    install(project, "unused", "", "pty:spawn")
    write_project(project, "", engine="python:pty:spawn")
    monkeypatch.chdir(project)
    assert run_cli(registry, "build", str(recipe), "--quiet") == 2
    assert "not a translator an installed package registers" in capsys.readouterr().err
    assert not (registry / "byo" / "1.0.0").exists()


def test_a_recipe_folder_that_is_a_package_on_sys_path_is_the_recipes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The recipe's folder is itself a package, registered by a dist-info beside it, and its parent is
    # on sys.path: registered or not, it is the recipe's code.
    project, registry = tmp_path / "byo_folder_pkg", tmp_path / "reg"
    recipe = write_project(project, "", engine="python:byo_folder_pkg.words:translate")
    (project / "__init__.py").write_text(MARKER, encoding="utf-8")
    (project / "words.py").write_text(dictionary_module(), encoding="utf-8")
    install(tmp_path, "unused", "", "byo_folder_pkg.words:translate")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert run_cli(registry, "build", str(recipe), "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "recipe's folder" in err and "--trust-code" in err, err
    assert not (project / "module-ran").exists()
    assert not (registry / "byo" / "1.0.0").exists()


@pytest.mark.parametrize(
    "engine",
    ["python:translator", "python:../translator.py:translate", "python:/abs/t.py:f", "nllb", "python:a b:f"],
)
def test_bad_engine_names_are_recipe_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], engine: str
) -> None:
    recipe = write_project(tmp_path / "project", dictionary_module(), engine=engine)
    assert run_cli(tmp_path / "reg", "build", str(recipe), "--trust-code", "--quiet") == 2
    err = capsys.readouterr().err
    assert "key 'stages[0].engine'" in err and "python:MODULE:FUNCTION" in err

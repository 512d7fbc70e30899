"""Decontamination in the evaluation set's language.

Expected values are computed here with plain Python sets of word tuples (``_grams``), never with
the code under test.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import write_jsonl

from dataset_builder.errors import InputError, RecipeError
from dataset_builder.recipe.schema import parse_recipe
from dataset_builder.rows import CANONICAL_SCHEMA, MESSAGES_TYPE, make_row_id
from dataset_builder.stages.base import RejectSink, StageContext, StageStats
from dataset_builder.stages.decontaminate import Decontaminate, DecontaminateConfig
from dataset_builder.testing import KEEP_REJECTED, alpaca_source, translate_stage, write_recipe

SCHEMA = CANONICAL_SCHEMA.append(pa.field("source_messages", MESSAGES_TYPE)).append(
    pa.field("source_lang", pa.string())
)
OPTIONS = {"src": {"language": "en"}, "ru-native": {"language": "ru"}}


def _words(text: str) -> list[str]:
    return re.sub(r"[^0-9a-z]+", " ", text.lower()).split()


def _grams(words: list[str], n: int) -> set[tuple[str, ...]]:
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _turns(user: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]


def _row(key: str, user: str, answer: str = "fine", *, lang: str = "en", original: str | None = None,
         source: str = "src", split: str | None = None) -> dict:  # fmt: skip
    messages = _turns(user, answer)
    row = {"row_id": make_row_id(source, messages), "source": source, "source_key": key, "lang": lang,
           "messages": messages, "source_messages": None if original is None else _turns(original, answer),
           "source_lang": None if original is None else "en"}  # fmt: skip
    if split:
        row["split"] = split
    return row


def _run(rows: list[dict], tmp_path: Path, *, schema: pa.Schema | None = SCHEMA, options: dict | None = None,
         **settings) -> tuple[list[dict], dict[str, str], dict]:  # fmt: skip
    """Kept rows, {source_key: detail} of the removed ones, and the stage's counters."""
    if schema is not None and rows and "split" in rows[0]:
        schema = schema.append(pa.field("split", pa.string()))
    table = pa.Table.from_pylist(rows, schema=schema)
    ctx = StageContext("decontaminate", StageStats("decontaminate"), RejectSink(), tmp_path, False, tmp_path,
                       OPTIONS if options is None else options)  # fmt: skip
    stage = Decontaminate(DecontaminateConfig(**settings))
    kept = [r for b in stage.run(iter([table]), ctx) for r in b.to_pylist()]
    rejected = ctx.rejects.table().to_pylist()
    assert all(r["reason"] == "contaminated" and r["stage"] == "decontaminate" for r in rejected)
    return kept, {r["source_key"]: r["detail"] for r in rejected}, ctx.stats.counters


def _eval_file(tmp_path: Path, prompts: list[str], name: str = "evals.jsonl") -> Path:
    return write_jsonl(
        tmp_path / name, [{"task_id": f"Task/{i}", "prompt": p} for i, p in enumerate(prompts)]
    )


def _score(detail: str) -> tuple[str, float]:
    """The item and the score a detail names."""
    found = re.search(r"item (\S+): (?:ngram: |containment |minhash: Jaccard )([0-9.]+)", detail)
    assert found, detail
    return found.group(1), float(found.group(2))


VOCAB = [
    "".join(
        random.Random(i).choice("bcdfghjklmnprstvz") + random.Random(i + 7).choice("aeiou") for _ in range(3)
    )
    for i in range(4000)
]


def _text(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(VOCAB) for _ in range(n)]


def _changed(rng: random.Random, words: list[str], k: int) -> list[str]:
    out = list(words)
    for i in rng.sample(range(len(out)), k):
        out[i] = rng.choice(VOCAB)
    return out


# -- the original turns and the translation are both compared --------------------------------


def test_translated_rows_are_compared_through_their_original_and_their_translation(tmp_path: Path) -> None:
    prose = "Write a function that returns the number of vowels in a sentence, ignoring case and accents"
    code = 'def count_vowels(text: str) -> int:\n    """Count the vowels in text."""\n'
    _eval_file(tmp_path, [prose, code])
    noise = "Кот ловит рыбу под старым мостом каждое утро, пока солнце ещё не встало над рекой"
    rows = [
        # Translated: the translation is noise, the original is a near-copy of the prose prompt.
        _row("orig", noise, lang="ru", original=prose.replace("sentence", "string")),
        # Translated: the original says something else, the translation carries the code verbatim.
        _row("trans", f"Дополни функцию:\n{code}", lang="ru", original="Complete the function below."),
        # Never translated: its own turns are its original.
        _row("plain", f"Please help. {prose}"),
        _row("clean", noise, lang="ru", original="Explain how a hash map resolves collisions in detail."),
        _row("native", "Как отсортировать словарь по значению в Python?", lang="ru", source="ru-native"),
    ]
    _, removed, counters = _run(
        rows, tmp_path, method="containment", test_split=False,
        eval_sets=[{"name": "he", "paths": ["evals.jsonl"], "id_column": "task_id"}],
    )  # fmt: skip
    assert set(removed) == {"orig", "trans", "plain"}
    assert "item Task/0:" in removed["orig"] and "in the row's original (en)" in removed["orig"]
    assert "item Task/1:" in removed["trans"] and "in the row's translation (ru)" in removed["trans"]
    assert "item Task/0:" in removed["plain"] and "in the row's original (en)" in removed["plain"]
    # Independently: trigram containment of the prose prompt in the changed original.
    want = _grams(_words(prose), 3)
    have = _grams(_words(prose.replace("sentence", "string") + " fine"), 3)
    assert _score(removed["orig"]) == ("Task/0", round(len(want & have) / len(want), 3))
    assert counters["contaminated:he"] == 3 and counters["originals_compared"] == 3
    assert list(counters["eval_sets"]["he"]["sha256"]) == ["evals.jsonl"]  # no path of this machine
    assert counters["rows_compared"] == 5 and counters["other_language:he"] == 1  # the native Russian row


# -- each method against a plain set computation, at the n-gram size the recipe asks for ---------


def _expected(rows: list[dict], evals: list[str], method: str, n: int, value: float, floor: int = 4) -> dict:
    """{row key: (item, score)} by plain Python sets: the best item of each matching row."""
    out = {}
    for row in rows:
        best = None
        for turns in (row["messages"], row["source_messages"]):
            if turns is None:
                continue
            text = _words(turns[0]["content"])
            for k, e in enumerate(evals):
                words = _words(e)
                if len(words) < floor:
                    continue
                size = min(n, len(words))
                mine, theirs = _grams(text, size), _grams(words, size)
                shared = len(mine & theirs)
                if method == "ngram":
                    score, ok = shared, shared >= min(value, len(theirs))
                elif method == "containment":
                    score = shared / len(theirs)
                    ok = score >= value
                else:
                    score = shared / len(mine | theirs)
                    ok = score >= value
                if ok and (best is None or (score, -k) > (best[1], -best[0])):
                    best = (k, score)
        if best is not None:
            out[row["source_key"]] = (f"Task/{best[0]}", round(best[1], 3))
    return out


@pytest.mark.parametrize(
    ("method", "n", "setting"),
    [("ngram", 13, {"min_overlap": 1}), ("ngram", 4, {"min_overlap": 3}), ("containment", 3, {"threshold": 0.7}),
     ("containment", 6, {"threshold": 0.5}), ("minhash", 2, {"threshold": 0.5}), ("minhash", 5, {"threshold": 0.5})],
)  # fmt: skip
def test_every_method_matches_a_plain_set_computation_at_its_ngram_size(
    tmp_path: Path, method: str, n: int, setting: dict
) -> None:
    rng = random.Random(11)
    evals = [_text(rng, rng.randint(12, 40)) for _ in range(12)]
    _eval_file(tmp_path, [" ".join(e) for e in evals])
    rows = []
    for i in range(120):
        e = evals[i % len(evals)]
        kind = i % 6
        if kind == 0:
            user = e  # verbatim
        elif kind == 1:
            user = _changed(rng, e, 1 + i % 3)  # a near-copy
        elif kind == 2:
            user = _text(rng, 10) + e[: len(e) // 2] + _text(rng, 10)  # half of it, quoted in a longer turn
        elif kind == 3:
            user = _changed(rng, e, len(e) // 3)  # a third of its words changed
        else:
            user = _text(rng, rng.randint(5, 60))  # unrelated
        original = None if i % 2 else " ".join(_text(rng, 20))
        rows.append(_row(f"r{i}", " ".join(user), original=original, lang="en"))
    value = setting.get("min_overlap", setting.get("threshold"))
    expected = _expected(rows, [" ".join(e) for e in evals], method, n, value)
    _, removed, counters = _run(
        rows, tmp_path, method=method, ngram=n, test_split=False, fields=["user"],
        eval_sets=[{"name": "ev", "paths": ["evals.jsonl"], "id_column": "task_id"}], **setting,
    )  # fmt: skip
    assert {k: _score(d) for k, d in removed.items()} == expected
    assert 10 < len(expected) < 110  # the case separates rows, it does not take all or none
    assert f"{n}-grams" in next(iter(removed.values()))
    assert counters["method"] == method and counters["ngram"] == n
    assert all(counters[k] == v for k, v in setting.items())


def test_the_ngram_size_changes_the_result_for_every_method(tmp_path: Path) -> None:
    """A near-copy with every third word changed shares no 3-grams with its prompt, but two thirds
    of its words (containment 20/30, Jaccard 20/40): each method finds it at n=1, none at n=3."""
    rng = random.Random(5)
    prompt = _text(rng, 30)
    copy = [w if i % 3 else rng.choice(VOCAB) for i, w in enumerate(prompt)]
    _eval_file(tmp_path, [" ".join(prompt)])
    rows = [_row("copy", " ".join(copy))]
    for method, setting in (
        ("ngram", {"min_overlap": 5}),
        ("containment", {"threshold": 0.6}),
        ("minhash", {"threshold": 0.4}),
    ):
        for n, hit in ((1, True), (3, False)):
            _, removed, _ = _run(rows, tmp_path, method=method, ngram=n, test_split=False, fields=["user"],
                                 eval_sets=[{"name": "ev", "paths": ["evals.jsonl"]}], **setting)  # fmt: skip
            assert ("copy" in removed) is hit, (method, n)


# -- defaults per method, settings recorded, settings of another method refused -----------------


def test_method_defaults_are_filled_in_and_recorded(tmp_path: Path) -> None:
    assert DecontaminateConfig(method="ngram").settings() == {
        "method": "ngram", "ngram": 13, "min_overlap": 1, "min_eval_words": 3}  # fmt: skip
    assert DecontaminateConfig(method="containment").settings() == {
        "method": "containment", "ngram": 3, "threshold": 0.6, "min_eval_words": 3}  # fmt: skip
    assert DecontaminateConfig(method="minhash").settings() == {
        "method": "minhash", "ngram": 5, "threshold": 0.8, "min_eval_words": 3}  # fmt: skip
    assert DecontaminateConfig(method="copy").settings() == {
        "method": "copy", "ngram": 3, "edit_rate": 0.7, "rare_rows": 1, "min_copies": 50, "copy_containment": 0.8,
        "min_eval_words": 3}  # fmt: skip
    assert DecontaminateConfig(method="containment", ngram=8).settings()["threshold"] == 0.6
    # The resolved settings a manifest records validate again to the same settings.
    cfg = DecontaminateConfig(method="containment", threshold=0.75)
    assert DecontaminateConfig(**cfg.model_dump(mode="json")) == cfg
    _, _, counters = _run([_row("a", "hello there")], tmp_path, method="containment", test_split=False)
    assert {k: counters[k] for k in ("method", "ngram", "threshold", "min_eval_words")} == {
        "method": "containment", "ngram": 3, "threshold": 0.6, "min_eval_words": 3}  # fmt: skip


@pytest.mark.parametrize(
    ("settings", "message"),
    [('method = "ngram"\nthreshold = 0.5', "'threshold' applies to method containment or minhash, not 'ngram'"),
     ('method = "containment"\nmin_overlap = 2', "'min_overlap' applies to method ngram, not 'containment'"),
     ('method = "minhash"\nmin_overlap = 2', "'min_overlap' applies to method ngram, not 'minhash'"),
     ('method = "containment"\nedit_rate = 0.5', "'edit_rate' applies to method copy, not 'containment'"),
     ('method = "copy"\nthreshold = 0.5', "'threshold' applies to method containment or minhash, not 'copy'")],
)  # fmt: skip
def test_a_setting_of_another_method_is_a_recipe_error(settings: str, message: str) -> None:
    import tomllib

    data = tomllib.loads(
        f'[dataset]\nname = "x"\nversion = "1"\n[[sources]]\nname = "s"\nadapter = "alpaca"\npaths = ["a.jsonl"]\n'
        f'[[stages]]\ntype = "decontaminate"\n{settings}\n'
    )
    with pytest.raises(RecipeError, match=r"key 'stages\[0\]'") as err:
        parse_recipe(data, Path("r.toml"))
    assert message in str(err.value) and "\n" not in str(err.value)


# -- short evaluation texts ------------------------------------------------------------------


def test_short_eval_texts_match_as_one_ngram_and_below_the_floor_are_counted(tmp_path: Path) -> None:
    evals = ["reverse a linked list", "sort it", "merge two sorted arrays in place"]
    _eval_file(tmp_path, evals)
    rows = [
        _row("whole", "Could you reverse a linked list for me?"),  # all four words, in order
        _row("scattered", "A list is linked; reverse it."),  # the words, not the sequence
        _row("tiny", "Please sort it now."),  # the two-word text is under the floor
        _row("six", "How do I merge two sorted arrays in place without extra memory?"),
    ]
    _, removed, counters = _run(rows, tmp_path, method="ngram", test_split=False, fields=["user"],
                                eval_sets=[{"name": "ev", "paths": ["evals.jsonl"]}])  # fmt: skip
    # Independently: each text's whole word sequence against the row's grams of that length.
    for key, text in (("whole", evals[0]), ("scattered", evals[0]), ("six", evals[2])):
        row = next(r for r in rows if r["source_key"] == key)
        words = _words(text)
        found = _grams(words, len(words)) <= _grams(_words(row["messages"][0]["content"]), len(words))
        assert (key in removed) is found
    assert set(removed) == {"whole", "six"}
    assert removed["whole"].startswith("eval set 'ev' item #0: ngram: 1 shared 4-grams")
    assert "item #2: ngram: 1 shared 6-grams" in removed["six"]
    assert counters["skipped_short:ev"] == 1 and counters["eval_texts:ev"] == 2
    # With the floor at 2 the two-word text is compared too, as one 2-gram.
    _, removed, counters = _run(rows, tmp_path, method="ngram", test_split=False, fields=["user"], min_eval_words=2,
                                eval_sets=[{"name": "ev", "paths": ["evals.jsonl"]}])  # fmt: skip
    assert set(removed) == {"whole", "six", "tiny"} and counters["skipped_short:ev"] == 0


# -- the detail names the set, the item, the method and score, and which text matched ----------


def test_detail_names_item_by_id_column_or_index_and_the_test_split_by_row(tmp_path: Path) -> None:
    rng = random.Random(2)
    prompt = " ".join(_text(rng, 20))
    _eval_file(tmp_path, ["unrelated words entirely here", prompt])
    test_row = _row("t", " ".join(_text(rng, 25)), split="test")
    rows = [
        _row("a", prompt, split="train"),
        _row("b", test_row["messages"][0]["content"] + " thanks", split="train"),
        test_row,
    ]
    spec = {"name": "he", "paths": ["evals.jsonl"]}
    _, removed, _ = _run(rows, tmp_path, method="containment", eval_sets=[{**spec, "id_column": "task_id"}])
    assert (
        removed["a"]
        == "eval set 'he' item Task/1: containment 1.000 of its 3-grams, in the row's original (en)"
    )
    assert removed["b"] == (f"eval set 'test_split' item row {test_row['row_id']}: containment 1.000 of its "
                            "3-grams, in the row's original (en)")  # fmt: skip
    _, removed, _ = _run(rows, tmp_path, method="ngram", eval_sets=[spec])
    assert removed["a"].startswith("eval set 'he' item #1: ngram: 8 shared 13-grams")
    write_jsonl(tmp_path / "no-id.jsonl", [{"prompt": prompt}])
    with pytest.raises(InputError, match=r"eval set 'x' \(no-id.jsonl\): no column 'task_id'"):
        _run(rows, tmp_path, eval_sets=[{"name": "x", "paths": ["no-id.jsonl"], "id_column": "task_id"}])


# -- the order of stages cannot silently defeat it --------------------------------------------


def test_rows_translated_without_their_originals_stop_the_build(tmp_path: Path) -> None:
    _eval_file(tmp_path, ["Write a function that returns the sum of the squares of a list"])
    translated = [
        _row(f"r{i}", "Напишите функцию, которая возвращает сумму квадратов", lang="ru") for i in range(3)
    ]
    spec = [{"name": "he", "paths": ["evals.jsonl"]}]
    with pytest.raises(RecipeError) as err:
        _run(translated, tmp_path, schema=CANONICAL_SCHEMA, eval_sets=spec, test_split=False)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(
        "stage 'decontaminate': 3 rows read in 'en' are now in 'ru' without their original"
    )
    assert "first: src r0" in message and "eval set 'he' (en)" in message and "before the stage" in message
    # Rows whose source is Russian, and rows a translate stage passed untranslated (its
    # source_messages column present, theirs null), are compared as they are and counted.
    native = [_row(f"n{i}", "Как развернуть список?", lang="ru", source="ru-native") for i in range(2)]
    _, _, counters = _run(native, tmp_path, schema=CANONICAL_SCHEMA, eval_sets=spec, test_split=False)
    assert counters["other_language:he"] == 2
    _, _, counters = _run(translated, tmp_path, eval_sets=spec, test_split=False)
    assert counters["other_language:he"] == 3
    # An eval set declared in Russian is in the rows' language: nothing to refuse.
    ru = [{"name": "he", "paths": ["evals.jsonl"], "language": "ru"}]
    _, _, counters = _run(translated, tmp_path, schema=CANONICAL_SCHEMA, eval_sets=ru, test_split=False)
    assert counters["other_language:he"] == 0


def test_comparing_with_the_test_split_before_split_stops_the_build(tmp_path: Path) -> None:
    from dataset_builder.errors import UserError

    rows = [_row(f"r{i}", "Write a function that returns the sum of the squares of a list") for i in range(3)]
    with pytest.raises(UserError, match="needs a split stage before it"):
        _run(rows, tmp_path, schema=CANONICAL_SCHEMA, test_split=True)


# -- Hub eval sets: the commit they resolved to, and a pinned revision ------------------------------


def test_hub_eval_set_records_its_commit_and_honours_a_pinned_revision(tmp_path: Path) -> None:
    from hub_server import HubServer

    first = ["Write a program that prints the first twenty prime numbers in ascending order on one line"]
    later = ["Explain the difference between a process and a thread using an operating system example"]
    write_jsonl(tmp_path / "data.jsonl", [{"instruction": t, "output": "ok"} for t in first + later])
    with HubServer() as server:
        env = server.client_env(tmp_path, "hf_test_token_0000000000")
        # Two commits of the eval set, made by huggingface_hub over HTTP (in a process of its own:
        # this one runs offline).
        script = (
            "import json, sys\n"
            "from huggingface_hub import CommitOperationAdd, HfApi\n"
            "api = HfApi()\n"
            "api.create_repo('org/evals', repo_type='dataset')\n"
            "for prompts in json.loads(sys.argv[1]):\n"
            "    data = ''.join(json.dumps({'task_id': f'E/{i}', 'prompt': p}) + '\\n' for i, p in enumerate(prompts))\n"
            "    op = CommitOperationAdd('test.jsonl', data.encode())\n"
            "    print(api.create_commit('org/evals', [op], commit_message='evals', repo_type='dataset').oid)\n"
        )
        made = subprocess.run([sys.executable, "-c", script, json.dumps([first, later])], env=env,
                              capture_output=True, text=True)  # fmt: skip
        assert made.returncode == 0, made.stderr
        pinned, head = made.stdout.split()
        manifests = {}
        for name, revision in (("head", ""), ("pinned", f'revision = "{pinned}"\n')):
            recipe = tmp_path / f"{name}.toml"
            recipe.write_text(
                f'[dataset]\nname = "{name}"\nversion = "1"\n'
                '[[sources]]\nname = "src"\nadapter = "alpaca"\npaths = ["data.jsonl"]\n'
                '[[stages]]\ntype = "decontaminate"\nmethod = "containment"\ntest_split = false\n'
                f'[[stages.eval_sets]]\nname = "hub-evals"\nhub_id = "org/evals"\nid_column = "task_id"\n{revision}'
                "[publish]\nmax_rejected_fraction = 0.9\n",
                encoding="utf-8",
            )
            proc = subprocess.run([sys.executable, "-m", "dataset_builder", "--registry", str(tmp_path / "reg"),
                                   "build", str(recipe), "--quiet"], env=env, capture_output=True, text=True)  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            manifests[name] = json.loads((tmp_path / "reg" / name / "1" / "manifest.json").read_text("utf-8"))
    import pyarrow.parquet as pq

    for name, commit_id, evals in (("head", head, later), ("pinned", pinned, first)):
        stage = next(s for s in manifests[name]["stages"] if s["stage"] == "decontaminate")
        assert stage["counters"]["commit:hub-evals"] == commit_id
        assert stage["counters"]["eval_sets"]["hub-evals"]["commit"] == commit_id
        assert stage["counters"]["contaminated:hub-evals"] == 1
        rejected = pq.read_table(tmp_path / "reg" / name / "1" / "rejected" / "rejected.parquet").to_pylist()
        assert [r["messages"][0]["content"] for r in rejected] == evals
        assert rejected[0]["detail"].startswith("eval set 'hub-evals' item E/0: containment 1.000")
    resolved = next(s for s in manifests["pinned"]["recipe"]["stages"] if s["type"] == "decontaminate")
    assert resolved["eval_sets"][0]["revision"] == pinned


# -- end to end: translate first, then decontaminate ---------------------------------------------

PROSE = [
    "Write a function that takes a list of integers and returns the second largest distinct value, "
    "or None when there is no such value.",
    "Create a class representing a bank account with methods to deposit, withdraw and report the balance, "
    "refusing any withdrawal larger than the balance.",
    "Given a string, determine whether its parentheses, brackets and braces are balanced and properly nested, "
    "and report the position of the first mismatch.",
    "Generate a program that reads a CSV file of student grades and prints the average grade for every course, "
    "sorted from the highest average to the lowest.",
]
CODE = [
    'def running_balance(operations: list[int]) -> bool:\n    """Given deposits and withdrawals on an account that '
    "starts at zero,\n    return True as soon as the balance falls below zero and False otherwise.\n"
    '    >>> running_balance([1, 2, -4, 5])\n    True\n    """\n',
    'def fractional_part(number: float) -> float:\n    """Split a positive floating point number into its integer '
    "part\n    and its decimals, and return the decimals only.\n    >>> fractional_part(3.5)\n    0.5\n"
    '    """\n',
    'def count_distinct_characters(text: str) -> int:\n    """Count how many distinct characters a string has, '
    'ignoring case.\n    >>> count_distinct_characters(\'xyzXYZ\')\n    3\n    """\n',
]
TOPICS = ["a priority queue", "binary search", "a trie", "memoization", "a context manager", "list slicing",
          "a generator", "the GIL", "decorators", "dataclasses", "regular expressions", "type hints"]  # fmt: skip
ASKS = ["Explain how {} works in Python and when to use it.", "Show a short example of {} and describe each line.",
        "What are the common mistakes people make with {}?"]  # fmt: skip


def test_planted_eval_prompts_are_removed_when_translation_runs_first(
    tmp_path: Path, tiny_argos: dict
) -> None:
    """English rows, near-copies of prose and code eval prompts planted among them, translated by a
    random-weights model (prose becomes noise) before decontamination: every planted row is
    removed, naming its item, and nothing else is."""
    rng = random.Random(4)

    def near(text: str, changes: dict[str, str]) -> str:
        for old, new in changes.items():
            assert old in text
            text = text.replace(old, new, 1)
        return text

    planted = {
        "P/0": {"instruction": near(PROSE[0], {"integers": "numbers"}), "output": "Use sorted(set(xs))."},
        "P/1": {"instruction": "I have a homework question. " + near(PROSE[1], {"deposit": "add", "report": "show"})
                + " Please use Python.", "output": "class Account: ..."},
        "P/2": {"instruction": "Solve the following task.", "input": near(PROSE[2], {"string": "text"}),
                "output": "Use a stack."},
        "P/3": {"instruction": near(PROSE[3], {"prints": "outputs"}), "output": "import csv"},
        "C/0": {"instruction": "Complete the following function.", "input": near(CODE[0], {"soon": "early"}),
                "output": "    balance = 0"},
        "C/1": {"instruction": "Implement this:\n\n" + near(CODE[1], {"decimals only": "fraction only"}),
                "output": "    return number % 1.0"},
        "C/2": {"instruction": "Finish the code below.", "input": near(CODE[2], {"ignoring": "regardless of"}),
                "output": "    return len(set(text.lower()))"},
    }  # fmt: skip
    clean = [{"instruction": rng.choice(ASKS).format(topic), "output": f"Here is how {topic} works."}
             for topic in TOPICS] + [{"instruction": f"Write a function that adds {i} to every item of a list.",
                                      "output": f"def add(xs):\n    return [x + {i} for x in xs]"} for i in range(8)]  # fmt: skip
    records = clean[:10] + list(planted.values()) + clean[10:]
    write_jsonl(tmp_path / "train.jsonl", records)
    write_jsonl(tmp_path / "prose.jsonl", [{"task_id": f"P/{i}", "prompt": p} for i, p in enumerate(PROSE)])
    write_jsonl(tmp_path / "code.jsonl", [{"task_id": f"C/{i}", "prompt": p} for i, p in enumerate(CODE)])

    # The test's own account of what must match: trigram containment by Python sets, on the English rows.
    def user(r: dict) -> str:
        return r["instruction"] + ("\n" + r["input"] if r.get("input") else "")

    for r in records:
        text = _grams(_words(user(r) + "\n" + r["output"]), 3)
        best = max(len(_grams(_words(e), 3) & text) / len(_grams(_words(e), 3)) for e in PROSE + CODE)
        assert (best >= 0.6) is (r in planted.values()), (user(r), best)

    stages = [
        translate_stage(packages_dir=tiny_argos["packages_dir"], cache_path=tmp_path / "cache.sqlite"),
        {
            "type": "decontaminate",
            "method": "copy",
            "test_split": False,
            "eval_sets": [
                {"name": name, "paths": [f"{name}.jsonl"], "id_column": "task_id"}
                for name in ("prose", "code")
            ],
        },
    ]
    source = alpaca_source("train.jsonl", name="en-rows", language="en")
    recipe = write_recipe(tmp_path, source, stages, name="planted", version="1", publish=KEEP_REJECTED)
    from dataset_builder.publishing.pipeline import build
    from dataset_builder.recipe.schema import load_recipe
    from dataset_builder.registry.store import Registry

    result = build(load_recipe(recipe), Registry(tmp_path / "reg"), show_progress=False)
    import pyarrow.parquet as pq

    rejected = pq.read_table(result.path / "rejected" / "rejected.parquet").to_pylist()
    contaminated = {r["source_key"]: r["detail"] for r in rejected if r["reason"] == "contaminated"}
    keys = {
        f"train.jsonl:{i + 1}": item
        for i, item in enumerate([None] * 10 + list(planted) + [None] * 10)
        if item
    }
    assert set(contaminated) == set(keys)
    for key, item in keys.items():
        assert f"item {item}:" in contaminated[key], contaminated[key]
    # Prose is found through the English original: its translation is noise. P/2's prose is the
    # task's input, which is never translated: it is found in the published row as it is.
    assert all(
        "original (en)" in contaminated[k]
        for k, item in keys.items()
        if item.startswith("P/") and item != "P/2"
    )
    stage = next(s for s in result.manifest["stages"] if s["stage"] == "decontaminate")
    assert stage["counters"]["contaminated:prose"] + stage["counters"]["contaminated:code"] == len(planted)
    assert stage["counters"]["originals_compared"] > 0
    assert stage["counters"]["rows_compared"] == len(records)
    card = (result.path / "README.md").read_text(encoding="utf-8")
    assert (
        "overlapping prose, code (copies of an eval text: all its words in order with at most 1 + 0.7" in card
    )
    # 4 of the 27 rows are copies of prose items, 3 of code items.
    assert "rows removed of 27 compared: prose 4 (14.81%), code 3 (11.11%); benchmarks not listed" in card


# -- method copy: copies of an eval item are removed, rows that only share its phrasing kept ---------

# Eval items as instruction + input (the input is part of the item). Words as the stage folds them.
COPY_ITEMS = [
    ("Write a Python function that returns the second largest distinct value in a list of integers, "
     "or None when there is none.", "[4, 1, 4, 3]"),
    ("Compute the factorial of a given number.", "9"),
    ("What is the output of the following code?", "print(1 + 2 * 3)"),
    ("Write a Python function that checks whether a number is prime. Test it with 123 random inputs.", ""),
    ("Write a Python function that reverses the order of words in a sentence.", ""),
]  # fmt: skip
# Other tasks that share "the factorial of a given number" or "what is the output of the following":
# phrasing any two programming tasks share (as in the issue that asked for this method).
PHRASE_ROWS = [
    "Find and fix the error in the following C++ code for calculating the factorial of a given number.",
    "Design a simple C++ program that computes the factorial of a given number with a loop.",
    "How would you implement a PHP function to calculate the factorial of a given number?",
    "Explain the recursion depth problem when computing the factorial of a given number in Python.",
    "Write a Rust function that returns the factorial of a given number as a u128.",
    "Show a Haskell one-liner that yields the factorial of a given number.",
    "What is the output of the following Java code?\nSystem.out.println(7 / 2);",
    "What is the output of the following JavaScript snippet?\nconsole.log(typeof null);",
    "What is the output of the following SQL query on an empty table?\nSELECT COUNT(*) FROM t;",
    "What is the output of the following shell command?\necho $((3 ** 2))",
]


# Forty more tasks around the same phrase, so it is in many rows.
MANY_PHRASE_ROWS = [
    f"Write a {lang} program that prints the factorial of a given number using {how}."
    for lang in ("Go", "Kotlin", "Lua", "Perl", "Ruby", "Swift", "Scala", "Julia")
    for how in ("a loop", "recursion", "memoization", "a stack", "big integers")
]


def _copy_run(tmp_path: Path, users: dict[str, str], **settings) -> tuple[dict[str, str], dict]:
    write_jsonl(tmp_path / "items.jsonl", [{"task_id": f"E/{i}", "instruction": a, "input": b}
                                           for i, (a, b) in enumerate(COPY_ITEMS)])  # fmt: skip
    rows = [_row(key, user, "Here is an answer with some code.") for key, user in users.items()]
    rows += [_row(f"phrase{i}", text, "An answer.") for i, text in enumerate(PHRASE_ROWS + MANY_PHRASE_ROWS)]
    spec = {
        "name": "ev",
        "paths": ["items.jsonl"],
        "columns": ["instruction", "input"],
        "id_column": "task_id",
    }
    _, removed, counters = _run(rows, tmp_path, method="copy", test_split=False, eval_sets=[spec], **settings)
    return removed, counters


def _item(i: int) -> str:
    return COPY_ITEMS[i][0] + ("\n" + COPY_ITEMS[i][1] if COPY_ITEMS[i][1] else "")


def test_copy_removes_quoted_and_one_word_dropped_copies_and_keeps_shared_phrasing(tmp_path: Path) -> None:
    quoted = f"I am preparing for an interview and got this task: {_item(0)}\nThanks in advance!"
    dropped = _item(0).replace(" distinct ", " ")
    removed, counters = _copy_run(tmp_path, {"quoted": quoted, "dropped": dropped})
    assert set(removed) == {"quoted", "dropped"}
    assert all("item E/0: copy: " in d for d in removed.values())
    assert "copy: 0 edits in its 26 words" in removed["quoted"]
    assert "copy: 1 edits in its 26 words" in removed["dropped"]
    assert counters["contaminated:ev"] == 2
    # The rows kept are the hard case for containment: several hold 0.6 of an item's 3-grams
    # (computed here with plain sets).
    shares = [max(len(_grams(_words(r), 3) & _grams(_words(_item(k)), 3)) / len(_grams(_words(_item(k)), 3))
                  for k in (1, 2)) for r in PHRASE_ROWS]  # fmt: skip
    assert sum(s >= 0.6 for s in shares) >= 3, shares
    assert not any(k.startswith("phrase") for k in removed)  # the forty other factorial tasks too
    _, removed_by_containment, _ = _run(
        [_row(f"phrase{i}", t, "An answer.") for i, t in enumerate(PHRASE_ROWS)], tmp_path, method="containment",
        test_split=False, eval_sets=[{"name": "ev", "paths": ["items.jsonl"], "columns": ["instruction", "input"]}],
    )  # fmt: skip
    assert len(removed_by_containment) == sum(s >= 0.6 for s in shares)


def test_copy_counts_the_items_input(tmp_path: Path) -> None:
    removed, _ = _copy_run(tmp_path, {
        "same-input": "Compute the factorial of a given number.\n9",
        "other-input": "Compute the factorial of a given number.\n12",
        "same-code": "What is the output of the following code?\nprint(1 + 2 * 3)",
        "other-code": "What is the output of the following code?\nprint(4 + 5 * 6)",
    })  # fmt: skip
    assert set(removed) == {"same-input", "same-code"}
    assert "item E/1: copy: 0 edits in its 8 words" in removed["same-input"]
    assert "item E/2: copy: 0 edits in its 12 words" in removed["same-code"]


def test_copy_removes_an_item_copied_into_many_rows(tmp_path: Path) -> None:
    """Thirty rows hold item E/3 with its number changed (2 edits each): its n-grams are in thirty
    rows, but those rows are its copies, so they stay evidence; the rows sharing its opening only
    (other tasks) are kept."""
    copies = {f"copy{i}": _item(3).replace("123", str(1000 + i)) for i in range(30)}
    others = {f"other{i}": f"Write a Python function that checks whether a {w} is sorted. Test it with {i} inputs."
              for i, w in enumerate(["list", "tuple", "string", "deque", "range", "array"])}  # fmt: skip
    item = _grams(_words(_item(3)), 3)
    assert all(len(_grams(_words(t), 3) & item) / len(item) >= 0.8 for t in copies.values())  # its copies
    removed, _ = _copy_run(tmp_path, {**copies, **others})
    assert set(removed) == set(copies)
    assert all("item E/3: copy: 2 edits in its 17 words" in removed[k] for k in copies)
    # With min_copies at 30 the same rows are removed as a text found in many rows.
    removed, _ = _copy_run(tmp_path, {**copies, **others}, min_copies=30)
    assert set(removed) == set(copies)
    assert all("found in 30 rows" in removed[k] for k in copies)


def test_copy_removes_the_same_edited_copy_in_several_rows(tmp_path: Path) -> None:
    """Item E/4 with "order" replaced by "sequence" (2 edits), quoted in three rows (one prompt asked
    three times with different answers): each of its 3-grams away from the edit is in three rows,
    but they hold the same words where the item sits, so they count once and stay rare. Held by one
    row the copy was removed before; three copies must not protect each other."""
    edited = "Write a Python function that reverses the sequence of words in a sentence."
    asked = {
        f"asked{i}": f"Question {i} from my homework: {edited} Please explain step by step." for i in range(3)
    }
    # Rows holding the item's phrase "a python function that reverses" with other words around it.
    others = {f"other{i}": f"Write a Python function that reverses a {w} in place." for i, w in enumerate(
        ["list", "string", "linked list"])}  # fmt: skip
    removed, _ = _copy_run(tmp_path, {**asked, **others})
    assert set(removed) == set(asked)
    assert all("item E/4: copy: 2 edits in its 13 words" in removed[k] for k in asked)


def test_copy_removes_an_item_with_its_input_first_or_its_sentences_traded(tmp_path: Path) -> None:
    removed, _ = _copy_run(tmp_path, {
        "code-first": "print(1 + 2 * 3)\nWhat is the output of the following code?",
        "number-first": "Here you go: 9\nCompute the factorial of a given number. Thanks!",
        "traded": "Test it with 123 random inputs. Write a Python function that checks whether a number is prime.",
        # Not copies: another program before the question, and another number after the task (the
        # item's input is not a word a copy may leave off at a turn's edge, whichever part comes first).
        "other-code-first": "print(4 + 5 * 6)\nWhat is the output of the following code?",
        "other-number": "Compute the factorial of a given number.\n12",
    })  # fmt: skip
    assert set(removed) == {"code-first", "number-first", "traded"}
    assert "item E/2: copy: 0 edits in its 12 words" in removed["code-first"]
    assert "item E/1: copy: 0 edits in its 8 words" in removed["number-first"]
    assert "item E/3: copy: 0 edits in its 17 words" in removed["traded"]
    assert all("(its parts or sentences in another order)" in d for d in removed.values())


def test_copy_detail_names_the_item_and_the_ngrams(tmp_path: Path) -> None:
    quoted = f"Please help. {_item(1)}"
    removed, _ = _copy_run(tmp_path, {"quoted": quoted})
    # Of the item's six 3-grams, "compute the factorial" and "given number 9" are in no row but this
    # copy: rare. The other four are in the phrase rows. So 1 + floor(0.7 * 2) edits are allowed.
    assert removed == {
        "quoted": "eval set 'ev' item E/1: copy: 0 edits in its 8 words (at most 2: 1 + 0.7 per rare 3-gram, "
        '2 held); shared 3-grams 6 of 6: "compute the factorial", "the factorial of", "factorial of a", '
        '"of a given" (+2 more), in the row\'s original (en)'
    }


def _edits_by_hand(text: list[int], joined: list[bool], row: list[int], edges: set[int]) -> int:
    """The copy method's edit count, written out case by case: ``cost[(g, j)]`` after placing the
    text's first ``i`` words in the row's first ``j`` words, ``g``: the last text word was dropped."""
    far = 10**9
    cost = {(0, j): 0 for j in range(len(row) + 1)}  # row words before the text are free
    for i, word in enumerate(text):
        nxt: dict[tuple[int, int], int] = {}
        for (g, j), c in cost.items():
            drop = 0 if (joined[i] and g) else 1
            if i == 0 and j not in edges:
                drop += 1  # the first word gone where the turn goes on before it: replaced
            nxt[(1, j)] = min(nxt.get((1, j), far), c + drop)
            if j < len(row) and row[j] == word:
                nxt[(0, j + 1)] = min(nxt.get((0, j + 1), far), c)
        for j in range(len(row)):  # a row word inserted inside the text
            here = min(nxt.get((0, j), far), nxt.get((1, j), far))
            nxt[(0, j + 1)] = min(nxt.get((0, j + 1), far), here + 1)
        cost = nxt
    ends = [c + (1 if g and j not in edges else 0) for (g, j), c in cost.items()]
    return min(ends)


def test_copy_edit_counts_match_a_case_by_case_computation() -> None:
    import numpy as np

    from dataset_builder.similarity.align import edit_counts
    from dataset_builder.similarity.shingles import Shingles

    rng = random.Random(3)
    texts, rows, joins, edge_sets = [], [], [], []
    for _ in range(300):
        text = [rng.randint(2, 6) for _ in range(rng.randint(2, 9))]
        row = list(text)
        for _ in range(rng.randint(0, 3)):  # edits: drop, insert, replace
            k = rng.randrange(len(row) + 1)
            op = rng.choice("dir")
            if op == "d" and k < len(row):
                del row[k]
            elif op == "i":
                row.insert(k, rng.randint(2, 8))
            elif k < len(row):
                row[k] = rng.randint(2, 8)
        row = [rng.randint(2, 8) for _ in range(rng.randint(0, 3))] + row + [rng.randint(2, 8) for _ in range(rng.randint(0, 3))]  # fmt: skip
        joins.append([False] + [rng.random() < 0.3 for _ in text[1:]])
        edge_sets.append({0, len(row)} | {k for k in range(len(row)) if rng.random() < 0.2})
        texts.append(text)
        rows.append(row)

    def pack(seqs: list[list[int]]) -> Shingles:
        return Shingles(np.array([w for s in seqs for w in s], dtype=np.uint64),
                        np.concatenate([[0], np.cumsum([len(s) for s in seqs])]).astype(np.int64))  # fmt: skip

    row_words = pack(rows)
    edges = np.array(
        sorted(int(row_words.offsets[k]) + e for k, es in enumerate(edge_sets) for e in es), np.int64
    )
    pairs = np.arange(len(texts))
    got = edit_counts(pack(texts), row_words, pairs, pairs, np.zeros(len(texts), np.int64),
                      np.full(len(texts), 40), edges, np.array([j for js in joins for j in js]))  # fmt: skip
    want = [_edits_by_hand(t, j, r, e) for t, j, r, e in zip(texts, joins, rows, edge_sets, strict=True)]
    assert got.tolist() == want
    assert len(set(want)) >= 4  # the cases spread over several edit counts

"""``dataset-builder check`` / ``build --dry-run``: every problem a build would hit, one line each, in seconds."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, write_jsonl

from dataset_builder.cli import main

GOOD = [{"instruction": f"task {i}", "output": f"answer {i}"} for i in range(5)]


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dataset_builder", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def test_the_sample_is_ready_to_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = tmp_path / "reg"
    assert main(["--registry", str(registry), "check", str(ROOT / "recipes" / "sample.toml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith(f"{ROOT / 'recipes' / 'sample.toml'}: ready to build, checked in ")
    # The sample's deliberately broken records are announced, not treated as problems.
    assert (
        f"note: {ROOT / 'recipes' / 'sample_data' / 'alpaca.jsonl'}: 2 of the first 73 records would be rejected ("
        in "\n".join(out)
    )
    assert any("translation will be skipped (no Argos package for en->ru" in line for line in out)
    assert not registry.exists()  # nothing written


def test_every_problem_is_one_line_and_nothing_is_built(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "good.jsonl", GOOD)
    write_jsonl(tmp_path / "no_output.jsonl", [{"instruction": "a", "answer": "b"}])
    (tmp_path / "broken.jsonl").write_text(
        '{"instruction": "a", "output": "b"}\n{"instruction": \n', encoding="utf-8"
    )
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1 this is not parquet at all")
    pq.write_table(pa.table({"question": ["q"], "reply": ["a"]}), tmp_path / "qa.parquet")
    write_jsonl(tmp_path / "eval.jsonl", [{"task_id": "x", "question": "q"}])
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        '[dataset]\nname = "t"\nversion = "1"\n'
        '[[sources]]\nname = "good"\nadapter = "alpaca"\npaths = ["good.jsonl"]\n'
        '[[sources]]\nname = "gone"\nadapter = "alpaca"\npaths = ["missing-*.jsonl"]\n'
        '[[sources]]\nname = "cols"\nadapter = "alpaca"\npaths = ["no_output.jsonl"]\n'
        '[[sources]]\nname = "broken"\nadapter = "alpaca"\npaths = ["broken.jsonl"]\n'
        '[[sources]]\nname = "corrupt"\nadapter = "alpaca"\npaths = ["corrupt.parquet"]\n'
        '[[sources]]\nname = "qa"\nadapter = "qa"\npaths = ["qa.parquet"]\n'
        '[[stages]]\ntype = "translate"\nif_missing = "error"\n'
        '[[stages]]\ntype = "split"\n'
        '[[stages]]\ntype = "replay"\nratio = 0.1\n[stages.source]\nname = "r"\nadapter = "alpaca"\npaths = ["good.jsonl"]\n'
        '[[stages]]\ntype = "decontaminate"\n[[stages.eval_sets]]\nname = "he"\npaths = ["eval.jsonl"]\n'
        '[[stages]]\ntype = "format"\ntokenizer = "no-such-tokenizer-folder"\n',
        encoding="utf-8",
    )
    start = time.monotonic()
    for command in (["check", str(recipe)], ["build", str(recipe), "--dry-run"]):
        proc = _run(["--registry", str(tmp_path / "reg"), *command], tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        where = f"{recipe}: key 'stages"
        assert proc.stderr.splitlines() == [
            f"error: {tmp_path / 'missing-*.jsonl'}: no file matches",
            f"error: {tmp_path / 'no_output.jsonl'}:1: missing column 'output' or 'response' (found: answer, "
            "instruction); map it with [sources.columns]",
            f"error: {tmp_path / 'broken.jsonl'}:2: invalid JSON (Expecting value at column 1)",
            f"error: {tmp_path / 'corrupt.parquet'}: not a readable Parquet file (Parquet magic bytes not found "
            "in footer. Either the file is corrupted or this is not a parquet file.)",
            f"error: {tmp_path / 'qa.parquet'}: missing column 'answer' (columns: question, reply)",
            f"error: {where}[0]' (translate): no Argos package for en->ru in {os.environ['DATASET_BUILDER_ARGOS_DIR']}; "
            "install one with `dataset-builder models install PATH.argosmodel`",
            f"error: {where}[2]' (replay): comes after the split stage (stages[1]): the rows it adds would get no "
            "split label and be rejected (no_split); move it before split",
            f"error: {where}[3]' (decontaminate): eval set 'he': no column 'prompt' in its first records (found: "
            "question, task_id)",
            f"error: {where}[4]' (format): tokenizer 'no-such-tokenizer-folder' is neither 'zephyr' nor a folder",
        ]
        assert proc.stdout.splitlines()[-1].startswith(f"{recipe}: 9 problem(s), checked in ")
    assert time.monotonic() - start < 30
    assert not (tmp_path / "reg").exists()


def test_an_invalid_recipe_is_one_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[dataset]\nname = "t"\nversion = "1"\ncolour = "red"\n', encoding="utf-8")
    assert main(["check", str(recipe)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {recipe}: key 'dataset.colour': unknown key"


def test_translate_package_is_loaded_and_its_settings_checked(
    tmp_path: Path, tiny_argos: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    write_jsonl(tmp_path / "good.jsonl", GOOD)
    stage = f'[[stages]]\ntype = "translate"\npackages_dir = "{tiny_argos["packages_dir"]}"\ncache_path = "c/cache.sqlite"\n'

    def check(extra: str) -> tuple[int, str, str]:
        recipe = tmp_path / "recipe.toml"
        recipe.write_text(
            '[dataset]\nname = "t"\nversion = "1"\n[[sources]]\nname = "good"\nadapter = "alpaca"\n'
            f'paths = ["good.jsonl"]\n{stage}{extra}',
            encoding="utf-8",
        )
        code = main(["--registry", str(tmp_path / "reg"), "check", str(recipe)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, _ = check("")
    assert code == 0 and "(translate): package translate-en_ru 0.0.1 loads and translates on cpu" in out
    assert not (tmp_path / "c").exists()  # the cache is checked, not created
    code, _, err = check('compute_type = "int4_nonsense"\n')
    assert code == 2 and "compute_type 'int4_nonsense' is not supported on cpu (supported: " in err
    # A package whose model file is damaged is found before a long run, not in the middle of one.
    broken = tmp_path / "broken-packages"
    import shutil

    shutil.copytree(tiny_argos["packages_dir"], broken)
    model = next(broken.glob("*/model/model.bin"))
    model.write_bytes(model.read_bytes()[:100])
    stage = stage.replace(str(tiny_argos["packages_dir"]), str(broken))
    code, _, err = check("")
    assert code == 2 and f"package {model.parent.parent} does not load or translate (" in err
    assert len(err.strip().splitlines()) == 1


def test_hub_sources_are_looked_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        '[dataset]\nname = "t"\nversion = "1"\n'
        '[[sources]]\nname = "h"\ntype = "hub"\nhub_id = "org/not-cached"\nadapter = "alpaca"\n',
        encoding="utf-8",
    )
    assert main(["check", str(recipe)]) == 2  # offline (HF_HUB_OFFLINE=1) and not in the cache
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: hub dataset org/not-cached@main split 'train': ") and "\n" not in err


def test_a_hub_source_is_streamed_not_downloaded(tmp_path: Path, sample_registry) -> None:
    """Online, the first records come over HTTP from the project's local Hub server; a missing
    revision is one line."""
    from hub_server import HubServer

    with HubServer() as server:
        env = server.client_env(tmp_path, "hf_test_token_do_not_log_1234567890")
        push = _run(
            ["--registry", str(sample_registry.root), "push", "python-ru-sample@0.1.0", "--repo", "org/src"],
            tmp_path,
            env,
        )
        assert push.returncode == 0, push.stderr
        for revision, expected in (("0.1.0", 0), ("9.9.9", 2)):
            recipe = tmp_path / "recipe.toml"
            recipe.write_text(
                '[dataset]\nname = "t"\nversion = "1"\n'
                f'[[sources]]\nname = "h"\ntype = "hub"\nhub_id = "org/src"\nrevision = "{revision}"\n'
                'adapter = "messages"\nlanguage = "ru"\n',
                encoding="utf-8",
            )
            proc = _run(["--registry", str(tmp_path / "reg"), "check", str(recipe)], tmp_path, env)
            assert proc.returncode == expected, proc.stderr
            if expected:
                assert len(proc.stderr.strip().splitlines()) == 1
                assert proc.stderr.startswith("error: hub dataset org/src@9.9.9 split 'train': ")
        assert not (tmp_path / "hf-datasets").exists() or not any((tmp_path / "hf-datasets").rglob("*.arrow"))


def test_an_eval_set_id_column_missing_from_its_file_is_a_problem(tmp_path: Path) -> None:
    from conftest import write_jsonl

    from dataset_builder.cli.check import check_recipe
    from dataset_builder.testing import alpaca_source, write_recipe

    write_jsonl(tmp_path / "data.jsonl", [{"instruction": "Add two numbers.", "output": "a + b"}])
    write_jsonl(tmp_path / "eval.jsonl", [{"prompt": "Add two numbers together."}])
    stages = (
        '[[stages]]\ntype = "split"\n\n[[stages]]\ntype = "decontaminate"\n'
        '[[stages.eval_sets]]\nname = "he"\npaths = ["eval.jsonl"]\nid_column = "task_id"\n'
    )
    findings = check_recipe(write_recipe(tmp_path, alpaca_source(), stages=stages))
    assert any("no column 'task_id'" in str(f) for f in findings)

"""The [run] section and `build --executor/--address`: validated, one-line errors, and the local
executor's manifest entry. Ray's own runs are in test_ray.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, write_jsonl

from dataset_builder.errors import RecipeError
from dataset_builder.recipe.schema import load_recipe
from dataset_builder.testing import alpaca_source, write_recipe


def _recipe(tmp_path: Path, run: str = "") -> Path:
    write_jsonl(
        tmp_path / "data.jsonl",
        [
            {"instruction": f"Напишите функцию номер {i}.", "input": "", "output": f"Ответ {i}."}
            for i in range(6)
        ],
    )
    return write_recipe(tmp_path, alpaca_source(language="ru"), publish=run)


def _cli(*args: str, block_ray: bool = False) -> subprocess.CompletedProcess[str]:
    # A Python where `import ray` fails, as on a machine without the extra.
    prelude = "import sys; sys.modules['ray'] = None; " if block_ray else "import sys; "
    code = prelude + "from dataset_builder.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


@pytest.mark.parametrize(
    ("run", "key", "message"),
    [
        ('[run]\nexecutor = "spark"\n', "run.executor", "'local' or 'ray'"),
        ("[run]\nworkers = 2\n", "run.workers", "unknown key"),
        ("[run]\nconcurrency = 0\n", "run.concurrency", "greater than or equal to 1"),
        ('[run]\naddress = "auto"\n', "run", "only used with executor = 'ray'"),
    ],
)
def test_run_section_is_validated(tmp_path: Path, run: str, key: str, message: str) -> None:
    with pytest.raises(RecipeError) as err:
        load_recipe(_recipe(tmp_path, run))
    assert f"key '{key}'" in str(err.value) and message in str(err.value)
    assert "recipe.toml" in str(err.value)


def test_run_section_defaults_to_local_and_stays_out_of_the_recipe_record(tmp_path: Path) -> None:
    recipe = load_recipe(_recipe(tmp_path))
    assert recipe.run.executor == "local" and recipe.run.concurrency == 1
    assert "run" not in recipe.resolved()
    ray_recipe = recipe.with_run(executor="ray", address="auto")
    assert (ray_recipe.run.executor, ray_recipe.run.address) == ("ray", "auto")
    assert ray_recipe.resolved() == recipe.resolved()


def test_address_without_ray_executor_is_one_line(tmp_path: Path) -> None:
    result = _cli("build", str(_recipe(tmp_path)), "--registry", str(tmp_path / "reg"), "--address", "auto")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "key 'run'" in result.stderr and "executor = 'ray'" in result.stderr
    assert not (tmp_path / "reg" / "t").exists()


def test_ray_executor_without_ray_says_how_to_get_it(tmp_path: Path) -> None:
    result = _cli(
        "build",
        str(_recipe(tmp_path)),
        "--registry",
        str(tmp_path / "reg"),
        "--executor",
        "ray",
        block_ray=True,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "needs Ray" in result.stderr and ".[ray]" in result.stderr
    assert not list((tmp_path / "reg").glob("t/*"))


def test_local_build_records_its_executor(tmp_path: Path) -> None:
    result = _cli("build", str(_recipe(tmp_path)), "--registry", str(tmp_path / "reg"), "--quiet")
    assert result.returncode == 0, result.stderr
    manifest = (tmp_path / "reg" / "t" / "1.0.0" / "manifest.json").read_text(encoding="utf-8")
    assert '"execution": {\n    "executor": "local"\n  }' in manifest


def test_ray_answers_are_put_back_in_order_and_a_batch_delivered_twice_fails() -> None:
    from dataset_builder.executors.ray import InOrder

    in_order = InOrder("translate")
    delivered = []
    for seq in (2, 0, 3, 1):
        delivered += [e["seq"] for e in in_order.add({"seq": seq})]
    assert delivered == [0, 1, 2, 3]
    in_order.finish(4)
    with pytest.raises(RuntimeError, match="'translate': batch 1 was delivered twice"):
        list(in_order.add({"seq": 1}))
    waiting = InOrder("format")
    list(waiting.add({"seq": 1}))
    with pytest.raises(RuntimeError, match="batch 1 was delivered twice"):
        list(waiting.add({"seq": 1}))  # twice while still waiting for batch 0
    with pytest.raises(RuntimeError, match="2 batch\\(es\\) of 2 never came back"):
        waiting.finish(2)

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT, write_jsonl
from hub_server import HubServer

from dataset_builder.registry.store import Registry
from trainer.evaluation.evalsets import EvalSetSpec, resolve
from trainer.evaluation.perplexity import EvalSettings, score, score_reference, stream, windows

REF = "python-ru-sample@0.1.0"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, sample_registry: Registry, tiny_mistral: Path) -> dict:
    return {"root": tmp_path_factory.mktemp("ppl"), "registry": sample_registry, "base": tiny_mistral}


def test_windows_cover_every_token_once() -> None:
    for n, length, stride in [(1000, 256, 128), (100, 256, 128), (1000, 100, 100), (257, 256, 64)]:
        ws = windows(n, length, stride)
        assert sum(w.scored for w in ws) == n
        assert all(w.end - w.begin <= length for w in ws)


@pytest.mark.parametrize("bos", ["first", "every", "none"])
def test_batched_equals_reference(env: dict, bos: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(env["base"])).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(env["base"]))
    texts = [
        f"Документ {i}: функция sorted() возвращает новый список, ё и й." * (1 + i % 4) for i in range(16)
    ]
    settings = EvalSettings(max_length=96, stride=40, bos=bos, batch_size=7)
    ids = stream(tokenizer, texts, settings)
    ref = score_reference(model, ids, settings, tokenizer.bos_token_id)
    got = score(model, ids, settings, tokenizer.bos_token_id, tokenizer.pad_token_id or 0)
    assert got.tokens == ref.tokens == len(ids) - (1 if bos != "every" else 0)
    assert abs(got.perplexity - ref.perplexity) / ref.perplexity < 1e-4
    # An untrained model knows nothing: its perplexity is near the vocabulary size.
    assert 0.5 * len(tokenizer) < ref.perplexity < 2 * len(tokenizer)


def test_eval_set_rules(env: dict, tmp_path: Path) -> None:
    rows = [
        {
            "prompt": "Write a Python function to add two numbers",
            "completion": "def add(a, b):\n    return a + b",
        },
        {"prompt": "Write a SQL query selecting all users", "completion": "SELECT * FROM users;"},
        {"prompt": "Reverse a string in JavaScript", "completion": "```python\nprint('x'[::-1])\n```"},
        {"prompt": "Create an HTML page title", "completion": "<title>My page</title>"},
        {"prompt": "Sum a list", "completion": "total = sum(values)"},
    ]
    write_jsonl(tmp_path / "ca.jsonl", rows)
    spec = EvalSetSpec(
        name="ca",
        paths=[str(tmp_path / "ca.jsonl")],
        fields=["prompt", "completion"],
        filter="without_python",
    )
    got = resolve(spec, None)
    assert got.texts == ["Write a SQL query selecting all users\nSELECT * FROM users;",
                         "Create an HTML page title\n<title>My page</title>"]  # fmt: skip
    assert got.source["filter"] == {"rule": "without_python", "rows_before": 5, "rows_after": 2}
    spec = EvalSetSpec(name="ci", dataset=REF, split="test", variant="code_and_instructions")
    code_only = resolve(spec, str(env["registry"].root))
    full = resolve(EvalSetSpec(name="t", dataset=REF, split="test"), str(env["registry"].root))
    assert len(code_only.texts) == len(full.texts) and code_only.source["content_hash"].startswith("sha256:")
    assert sum(map(len, code_only.texts)) < sum(map(len, full.texts))


def test_five_set_evaluation_end_to_end(env: dict, tmp_path: Path) -> None:
    from trainer.evaluation.perplexity_run import run_evaluation
    from trainer.training.config import TrainConfig
    from trainer.training.qlora import train

    write_jsonl(
        tmp_path / "codealpaca.jsonl",
        [{"prompt": f"Write a query number {i}", "completion": f"SELECT {i} FROM t;"} for i in range(20)]
        + [
            {"prompt": f"Write a Python function {i}", "completion": f"def f{i}():\n    return {i}"}
            for i in range(20)
        ],
    )
    write_jsonl(
        tmp_path / "wikitext.jsonl", [{"text": t} for t in [" = Title = \n", "", " Some text here . \n"] * 20]
    )
    paper = tomllib.loads((ROOT / "recipes" / "eval-paper.toml").read_text(encoding="utf-8"))
    sets = []
    for s in paper["sets"]:  # the paper's five sets, with local stand-ins where the paper reads the Hub
        if "dataset" in s:
            s["dataset"] = REF
        elif s["hub_id"].startswith("HuggingFaceH4"):
            s = {k: v for k, v in s.items() if k != "hub_id"} | {
                "paths": [str(tmp_path / "codealpaca.jsonl")]
            }
        else:
            s = {k: v for k, v in s.items() if k not in ("hub_id", "hub_config")} | {
                "paths": [str(tmp_path / "wikitext.jsonl")]
            }
        sets.append(s)
    config = tmp_path / "eval.toml"
    config.write_text(
        "".join("[[sets]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in s.items()) for s in sets)
    )

    adapter = tmp_path / "adapter"
    train(TrainConfig.load(None, {
        "dataset": REF, "registry": str(env["registry"].root), "base": str(env["base"]), "out": str(adapter),
        "compute_dtype": "float32", "lora_r": 8, "learning_rate": 2e-2, "warmup_ratio": 0.0,
        "lr_scheduler_type": "constant", "max_steps": 8, "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1, "max_length": 128, "save_steps": 100, "eval_split": None,
    }))  # fmt: skip
    out = tmp_path / "report"
    report = run_evaluation(str(env["base"]), [str(adapter)], [str(config)], out,
                            EvalSettings(max_length=128, stride=64, batch_size=8), registry=str(env["registry"].root))  # fmt: skip
    assert {p.name for p in out.iterdir()} == {
        "perplexity.json",
        "perplexity.md",
        "perplexity.png",
        ".qlora-trainer.json",
    }
    assert (
        sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    )  # no staging folder left
    data = json.loads((out / "perplexity.json").read_text(encoding="utf-8"))
    assert list(data["sets"]) == [s["name"] for s in sets] and set(data["results"]) == {"base", "adapter"}
    assert data["sets"]["corpus-test"]["content_hash"] == env["registry"].get(REF).manifest["content_hash"]
    assert data["conventions"]["max_length"] == 128 and data["conventions"]["bos"] == "first"
    base, tuned = data["results"]["base"], data["results"]["adapter"]
    assert tuned["corpus-test"]["perplexity"] < base["corpus-test"]["perplexity"]  # trained on this data
    assert all(math.isfinite(r["bits_per_byte"]) for r in base.values())
    assert data["adapters"]["adapter"]["dataset"]["version"] == "0.1.0"
    assert "| corpus-test |" in (out / "perplexity.md").read_text(encoding="utf-8")
    assert report["markdown"].count("\n") == len(sets) + 1


# Puts a JSONL eval set on a Hub (argv[1]) and reads it once through the evaluation's own path,
# which leaves it in the datasets cache as any first run on a machine with a network would.
SEED_HUB_SET = """
import sys
from huggingface_hub import HfApi
from trainer.evaluation.evalsets import EvalSetSpec, resolve
api = HfApi(endpoint=sys.argv[1])
api.create_repo("org/evalset", repo_type="dataset")
api.upload_file(path_or_fileobj=sys.argv[2].encode(), path_in_repo="test.jsonl", repo_id="org/evalset",
                repo_type="dataset")
print(len(resolve(EvalSetSpec(name="s", hub_id="org/evalset", split="test"), None).texts))
"""


def test_hub_eval_set_from_the_cache_when_the_hub_is_unreachable(env: dict, tmp_path: Path) -> None:
    texts = [f"def f{i}(x):\n    return x * {i}" for i in range(6)]
    base_env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "hf_test_token"}
    base_env.pop("HF_HUB_OFFLINE", None)
    with HubServer() as hub:
        seed = subprocess.run(
            [sys.executable, "-c", SEED_HUB_SET, hub.url, "".join(json.dumps({"text": t}) + "\n" for t in texts)],
            env={**base_env, "HF_ENDPOINT": hub.url}, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert seed.returncode == 0 and seed.stdout.split()[-1] == "6", seed.stderr
    with socket.socket() as s:  # the Hub is gone: nothing listens where it was
        s.bind(("127.0.0.1", 0))
        offline = {**base_env, "HF_ENDPOINT": f"http://127.0.0.1:{s.getsockname()[1]}"}
    sets = tmp_path / "sets.toml"
    sets.write_text('[[sets]]\nname = "hub-set"\nhub_id = "org/evalset"\n', encoding="utf-8")
    argv = [sys.executable, "-m", "trainer", "perplexity", "--base", str(env["base"]), "--eval", str(sets),
            "--max-length", "64", "--stride", "64"]  # fmt: skip
    done = subprocess.run([*argv, "--out", str(tmp_path / "r1")], env=offline, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "r1" / "perplexity.json").read_text(encoding="utf-8"))
    assert report["results"]["base"]["hub-set"]["documents"] == len(texts)

    sets.write_text('[[sets]]\nname = "never-read"\nhub_id = "org/other"\n', encoding="utf-8")
    failed = subprocess.run(
        [*argv, "--out", str(tmp_path / "r2")], env=offline, capture_output=True, text=True
    )
    lines = [line for line in failed.stderr.splitlines() if line.strip()]
    assert failed.returncode == 2 and len(lines) == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert lines[0].startswith("error: eval set 'never-read': org/other:") and "is unreachable" in lines[0]
    assert not (tmp_path / "r2").exists()

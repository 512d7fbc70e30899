"""`qlora-trainer benchmark` on a tiny random model: a local lm-evaluation-harness task whose
accuracy is computed independently with transformers, HumanEval completions that equal an
independent greedy decode, the report files, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from trainer.evaluation.downstream import BenchmarkSettings, run_benchmark
from trainer.evaluation.downstream_report import markdown_table
from trainer.evaluation.humaneval import STOP_SEQUENCES, english_problems_file, read_problems_file
from trainer.evaluation.leaderboard import LEADERBOARD, expand_tasks

QUESTIONS = [
    ("Question: what is two plus two?", ["4", "four apples", "def f(x): return x"]),
    ("Question: which word is a colour?", ["red", "table", "seventeen"]),
    ("Question: what does print do in Python?", ["writes text", "nothing at all", "x"]),
    ("Question: pick a prime number.", ["7", "8", "nine hundred"]),
    ("Question: the opposite of hot is", ["cold", "warm water", "H"]),
    ("Question: how many legs has a cat?", ["four", "2", "one hundred and six"]),
    ("Question: sort [3, 1, 2].", ["[1, 2, 3]", "[3, 2, 1]", "sorted"]),
    ("Question: a Python list literal is", ["[]", "{}", "a list of things"]),
    ("Question: the capital of France is", ["Paris", "Lyon", "the Eiffel tower"]),
    ("Question: len('abc') returns", ["3", "abc", "an error"]),
    ("Question: water freezes at", ["0 C", "100 C", "never"]),
    ("Question: True and False is", ["False", "True", "maybe"]),
]

TASK_YAML = """\
task: tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def _loglikelihoods(model, tokenizer, context: str, choices: list[str]) -> list[float]:
    """log P(" " + choice | context), summed over the choice's tokens, from one forward pass."""
    import torch

    out = []
    for choice in choices:
        prefix = tokenizer(context).input_ids
        whole = tokenizer(context + " " + choice).input_ids
        assert whole[: len(prefix)] == prefix
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([whole])).logits[0].double(), dim=-1)
        out.append(sum(float(logp[i - 1, whole[i]]) for i in range(len(prefix), len(whole))))
    return out


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, tiny_mistral: Path) -> dict:
    """The tiny model, a LoRA adapter with random (non-zero) weights saved as peft saves it, and
    per model the log-likelihood of every choice."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("benchmark")
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_mistral))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_mistral)).eval()
    base_ll = [_loglikelihoods(model, tokenizer, q, c) for q, c in QUESTIONS]
    config = LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config).eval()
    adapter = root / "adapter-a"
    peft_model.save_pretrained(adapter)
    adapter_ll = [_loglikelihoods(peft_model, tokenizer, q, c) for q, c in QUESTIONS]
    # Gold answers: the base model's favourite for two questions in three, its least favourite
    # otherwise, so the base's accuracy is exactly 8/12 and not a property of chance.
    answers = [_argmax(ll) if i % 3 else _argmax([-x for x in ll]) for i, ll in enumerate(base_ll)]
    tasks = root / "tasks"
    tasks.mkdir()
    data = tasks / "tiny_mc.jsonl"
    data.write_text("".join(json.dumps({"question": q, "choices": c, "answer": a}) + "\n"
                            for (q, c), a in zip(QUESTIONS, answers, strict=True)))  # fmt: skip
    (tasks / "tiny_mc.yaml").write_text(TASK_YAML.format(data=data))
    return {"root": root, "base": tiny_mistral, "adapter": adapter, "tasks": tasks, "answers": answers,
            "ll": {"base": base_ll, "adapter-a": adapter_ll}}  # fmt: skip


def _expected(lls: list[list[float]], answers: list[int]) -> tuple[float, float]:
    acc = sum(_argmax(ll) == a for ll, a in zip(lls, answers, strict=True)) / len(answers)
    norm = [
        [x / len(choice) for x, choice in zip(ll, choices, strict=True)]
        for ll, (_, choices) in zip(lls, QUESTIONS, strict=True)
    ]
    acc_norm = sum(_argmax(n) == a for n, a in zip(norm, answers, strict=True)) / len(answers)
    return acc, acc_norm


def test_local_harness_task_accuracy_equals_independent_computation(env: dict, tmp_path: Path) -> None:
    out = tmp_path / "report"
    settings = BenchmarkSettings(
        tasks=("tiny_mc",), include_path=str(env["tasks"]), batch_size=4, device="cpu"
    )
    report = run_benchmark(str(env["base"]), [str(env["adapter"])], out, settings)
    assert _expected(env["ll"]["base"], env["answers"])[0] == pytest.approx(8 / 12)
    for label in ("base", "adapter-a"):
        acc, acc_norm = _expected(env["ll"][label], env["answers"])
        got = report["results"][label]["tiny_mc"]
        assert got["value"] == pytest.approx(acc), label
        assert got["all"]["tiny_mc"]["acc_norm,none"] == pytest.approx(acc_norm), label
    # The adapter's random LoRA weights change the model: its answers are not the base's.
    assert env["ll"]["adapter-a"] != env["ll"]["base"]
    data = json.loads((out / "benchmark.json").read_text(encoding="utf-8"))
    assert data["tasks"]["tiny_mc"] == {"kind": "harness", "num_fewshot": 0, "metric": "acc,none", "leaderboard": False,
                                        "version": 1.0, "limit": None, "samples": {"original": 12, "effective": 12}}  # fmt: skip
    assert data["versions"]["lm_eval"] and data["adapters"]["adapter-a"]["path"] == str(env["adapter"])
    assert data["settings"]["include_path"] == str(env["tasks"])
    assert sorted(p.name for p in out.iterdir()) == [
        ".qlora-trainer.json",
        "benchmark.json",
        "benchmark.md",
        "benchmark.png",
    ]
    table = (out / "benchmark.md").read_text(encoding="utf-8")
    assert "| task | metric | base | adapter-a |" in table and "| tiny_mc | acc, 0-shot |" in table


@pytest.mark.skipif(os.geteuid() != 0, reason="the kernel sandbox needs root (CI runs as root)")
def test_humaneval_completions_equal_an_independent_greedy_decode(env: dict, tmp_path: Path) -> None:
    """Completions come from the harness (greedy, the original stop sequences); decoding the same
    prompts with transformers' generate and cutting at the first stop sequence gives the same text."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "report"
    settings = BenchmarkSettings(tasks=("humaneval",), limit=3, max_gen_toks=12, device="cpu", timeout=5)
    report = run_benchmark(str(env["base"]), [], out, settings)
    result = report["results"]["base"]["humaneval"]
    assert result["problems_scored"] == 3 and result["samples"] == 3 and result["pass@1"] == 0.0
    assert set(result["statuses"]) <= {"failed", "timeout"}
    rows = [
        json.loads(line) for line in (out / result["samples_path"]).read_text(encoding="utf-8").splitlines()
    ]
    problems = read_problems_file(english_problems_file())[:3]
    tokenizer = AutoTokenizer.from_pretrained(str(env["base"]))
    model = AutoModelForCausalLM.from_pretrained(str(env["base"])).eval()
    for problem, row in zip(problems, rows, strict=True):
        ids = tokenizer(problem.prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            generated = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=2)
        text = tokenizer.decode(generated[0, ids.shape[1] :], skip_special_tokens=True)
        for stop in STOP_SEQUENCES:
            text = text.split(stop)[0]
        assert row["task_id"] == problem.task_id and row["completion"] == text
    task_file = json.loads((out / "tasks" / "qlora_humaneval.yaml").read_text(encoding="utf-8"))
    assert task_file["generation_kwargs"] == {
        "until": list(STOP_SEQUENCES),
        "max_gen_toks": 12,
        "do_sample": False,
    }
    assert report["sandbox"]["limits"]["timeout"] == 5


def test_leaderboard_settings_and_paper_numbers() -> None:
    assert expand_tasks(["leaderboard", "gsm8k", "humaneval"]) == (*LEADERBOARD, "humaneval")
    assert {t: s["num_fewshot"] for t, s in LEADERBOARD.items()} == {
        "arc_challenge": 25, "hellaswag": 10, "mmlu": 5, "truthfulqa_mc2": 0, "winogrande": 5, "gsm8k": 5,
    }  # fmt: skip
    # A report as the command writes it for the six tasks: our average beside the paper's, labelled.
    values = {
        "arc_challenge": 0.6,
        "hellaswag": 0.8,
        "mmlu": 0.55,
        "truthfulqa_mc2": 0.5,
        "winogrande": 0.75,
        "gsm8k": 0.3,
    }
    report = {
        "tasks": {t: {"kind": "harness", "metric": s["metric"], "num_fewshot": s["num_fewshot"]} for t, s in LEADERBOARD.items()},
        "results": {"base": {t: {"value": v} for t, v in values.items()}},
    }  # fmt: skip
    table = markdown_table(report)
    assert (
        "| task | metric | base | paper: HuggingFaceH4/zephyr-7b-beta | paper: zephyr-python-ru (merged adapter) |"
        in table
    )
    assert "| leaderboard average | mean of the six | 58.33 | 61.95 | 60.10 |" in table
    assert "| arc_challenge | acc_norm, 25-shot | 60.00 |  |  |" in table


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "trainer", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600, check=False)  # fmt: skip


def test_errors_are_one_line(env: dict, tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = _cli(
        "benchmark",
        "--base",
        str(env["base"]),
        "--tasks",
        "no_such_task",
        "--out",
        str(out),
        "--device",
        "cpu",
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert (
        done.stderr.strip()
        == "error: --tasks no_such_task: no such lm-evaluation-harness task (add --include-path for local YAML tasks)"
    )
    assert not out.exists()
    done = _cli("benchmark", "--tasks", "humaneval,tiny_mc", "--samples", "x.jsonl", "--out", str(out))
    assert done.returncode == 2 and "--samples scores one HumanEval task" in done.stderr
    done = _cli(
        "benchmark",
        "--base",
        str(env["base"]),
        "--adapter",
        str(tmp_path),
        "--tasks",
        "humaneval",
        "--out",
        str(out),
    )
    assert done.returncode == 2 and done.stderr.startswith(
        f"error: --adapter {tmp_path}: no adapter_config.json in"
    )
    done = _cli("benchmark", "--base", str(tmp_path / "nowhere"), "--tasks", "humaneval", "--out", str(out))
    assert (
        done.returncode == 2
        and done.stderr.strip() == f"error: --base {tmp_path / 'nowhere'}: no such folder"
    )
    assert not out.exists()

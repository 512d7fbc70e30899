"""qlora-trainer as a user meets it: one-line errors before anything loads, offline detected at
once, output folders never mixed or half-written, help that is enough to run every command."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT
from hub_server import HubServer

from dataset_builder.registry.store import Registry

REF = "python-ru-sample@0.1.0"
# What loading a model needs. (torch itself is left out: datasets before 5.0 imports it on import.)
HEAVY = ("transformers", "peft", "bitsandbytes", "accelerate")
# Runs the CLI and reports, on stdout, which heavy libraries the failed command imported.
RUNNER = (
    "import json, sys\n"
    "from trainer.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    f"print(json.dumps({{'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    "sys.exit(rc)\n"
)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HOME": str(tmp / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
    }
    env.pop("HF_HUB_CACHE", None)
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, list[str], float]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )
    elapsed = time.monotonic() - started
    report = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {"heavy": None}
    return proc.returncode, proc.stderr, report["heavy"], elapsed


def _one_line_error(stderr: str) -> str:
    # Progress bars of a model that started loading are not part of the error.
    lines = [
        line for line in stderr.splitlines() if line.strip() and not re.search(r"\d+%\|.*\d+/\d+ \[", line)
    ]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "Traceback" not in stderr
    return lines[0]


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory, sample_registry: Registry, tiny_mistral: Path) -> dict:
    root = tmp_path_factory.mktemp("cli")
    not_ours = root / "not-ours"
    not_ours.mkdir()
    (not_ours / "notes.txt").write_text("mine\n", encoding="utf-8")
    no_weights = root / "no-weights-adapter"
    no_weights.mkdir()
    (no_weights / "adapter_config.json").write_text("{}", encoding="utf-8")
    made_by_tiny_model = root / "tiny-model-output"
    shutil.copytree(tiny_mistral, made_by_tiny_model)
    (made_by_tiny_model / ".qlora-trainer.json").write_text('{"command": "tiny-model"}', encoding="utf-8")
    return {
        "root": root,
        "registry": str(sample_registry.root),
        "base": str(tiny_mistral),
        "not_ours": not_ours,
        "no_weights": no_weights,
        "tiny_output": made_by_tiny_model,
    }


def _train(place: dict, *extra: str, base: str | None = None, out: str = "out") -> list[str]:
    return ["train", "--dataset", REF, "--registry", place["registry"], "--base", base or place["base"],
            "--out", out, "--compute-dtype", "float32", *extra]  # fmt: skip


# (name, argv builder, environment overrides, what the one line must say)
CASES = [
    ("local path missing", lambda p: _train(p, base="./no-such-model"), {},
     "--base ./no-such-model: no such folder"),
    ("base is a file", lambda p: _train(p, base=p["base"] + "/config.json"), {}, "not a folder"),
    ("hub id offline, not cached", lambda p: _train(p, base="HuggingFaceH4/zephyr-7b-beta"),
     {"HF_HUB_OFFLINE": "1"}, "not in the Hugging Face cache; HF_HUB_OFFLINE is set"),
    ("hub unreachable, not cached", lambda p: _train(p, base="HuggingFaceH4/zephyr-7b-beta"),
     {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"}, "is unreachable"),
    ("not a hub id", lambda p: _train(p, base="no such model!"), {}, "not a Hub repo id"),
    ("dataset missing", lambda p: ["train", "--dataset", "no-such-set@1.0.0", "--registry", p["registry"],
                                   "--base", p["base"], "--out", "out"], {}, "no-such-set"),
    ("split missing", lambda p: _train(p, "--train-split", "validation"), {}, "no split 'validation'"),
    ("required setting missing", lambda p: ["train", "--dataset", REF, "--out", "out"], {},
     "train needs --base (on the command line or in --config)"),
    ("unknown config key", lambda p: _train(p, "--config", str(p["root"] / "bad.toml")), {}, "bad.toml"),
    ("out not empty, not ours", lambda p: _train(p, out=str(p["not_ours"])), {},
     "not an output of qlora-trainer"),
    ("overwrite refuses a folder not ours", lambda p: _train(p, "--overwrite", out=str(p["not_ours"])), {},
     "refusing to delete it"),
    ("resume a folder that is no training run", lambda p: _train(p, "--resume", out=str(p["tiny_output"])),
     {}, "nothing to resume"),
    ("out holds another command's output", lambda p: _train(p, out=str(p["tiny_output"])), {},
     "holds an earlier 'tiny-model' output; use --overwrite"),
    ("out is the base model's folder", lambda p: _train(p, "--overwrite", base=str(p["tiny_output"]),
                                                        out=str(p["tiny_output"])), {},
     "is where --base"),
    ("merge: adapter missing", lambda p: ["merge", "--base", p["base"], "--adapter", "adapters/none",
                                          "--out", "merged"], {}, "--adapter adapters/none: no such folder"),
    ("merge: a model is not an adapter", lambda p: ["merge", "--base", p["base"], "--adapter", p["base"],
                                                    "--out", "merged"], {}, "no adapter_config.json"),
    ("merge: adapter without weights", lambda p: ["merge", "--base", p["base"], "--adapter",
                                                  str(p["no_weights"]), "--out", "merged"], {}, "no weights"),
    ("perplexity: eval file missing", lambda p: ["perplexity", "--base", p["base"], "--eval", "sets.toml",
                                                 "--out", "report"], {}, "sets.toml: eval config not found"),
    ("perplexity: split missing", lambda p: ["perplexity", "--base", p["base"], "--eval", f"{REF}:dev",
                                             "--registry", p["registry"], "--out", "report"], {}, "no split 'dev'"),
    ("perplexity: stride over max-length", lambda p: ["perplexity", "--base", p["base"], "--eval",
                                                      f"{REF}:test", "--stride", "2048", "--out", "report"], {},
     "--stride 2048"),
    ("tiny-model: odd width", lambda p: ["tiny-model", "--out", "tiny", "--hidden", "12"], {}, "--hidden 12"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "env", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_failures_are_one_line_before_anything_loads(place: dict, tmp_path: Path, argv, env, says) -> None:
    (place["root"] / "bad.toml").write_text("lora_r = 8\nlearning_rat = 1e-4\n", encoding="utf-8")

    def state() -> dict:
        kept = [*place["not_ours"].rglob("*"), *place["tiny_output"].rglob("*")]
        return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in kept if p.is_file()}

    before = state()
    rc, stderr, heavy, elapsed = _run(argv(place), _env(tmp_path, **env), tmp_path)
    line = _one_line_error(stderr)
    assert rc != 0 and says in line, line
    assert heavy == [], f"{heavy} imported before the error"
    assert elapsed < 20, f"{elapsed:.1f} s"  # the probe gives up after 3 s; nothing waits for retries
    assert not any(tmp_path.glob("out*")) and not any(tmp_path.glob("merged*"))
    assert not any(tmp_path.glob("report*")) and not any(tmp_path.glob("tiny*"))
    assert state() == before  # folders the command was given are as they were


def test_resume_and_overwrite_together_are_refused(place: dict, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", *_train(place, "--resume", "--overwrite")],
        env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert (
        proc.returncode == 2 and "not allowed with argument" in proc.stderr and "Traceback" not in proc.stderr
    )


def test_missing_model_on_a_reachable_hub(place: dict, tmp_path: Path) -> None:
    with HubServer() as hub:
        env = _env(tmp_path, HF_HUB_OFFLINE="0", HF_ENDPOINT=hub.url)
        rc, stderr, heavy, _ = _run(_train(place, base="org/no-such-model"), env, tmp_path)
    line = _one_line_error(stderr)
    assert rc == 2 and f"no such model on the Hub {hub.url}" in line and heavy == []


def test_cached_hub_model_is_used_at_once_when_the_hub_is_unreachable(place: dict, tmp_path: Path) -> None:
    # The Hugging Face cache layout, as huggingface_hub writes it after a download.
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf-home" / "hub" / "models--org--tiny"
    shutil.copytree(place["base"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit, encoding="utf-8")
    env = _env(tmp_path, HF_HUB_OFFLINE="0", HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}")
    argv = ["perplexity", "--base", "org/tiny", "--eval", f"{REF}:test", "--registry", place["registry"],
            "--out", "report", "--max-length", "64", "--stride", "64", "--limit", "3"]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", *argv], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "report" / "perplexity.json").read_text(encoding="utf-8"))
    assert report["base_model"] == "org/tiny" and report["results"]["base"][f"{REF}:test"]["documents"] == 3
    # Without the switch to the cache, the libraries retry the closed port for over three minutes.
    assert elapsed < 120, f"{elapsed:.0f} s"


def _mismatched_adapter(folder: Path) -> Path:
    """A real LoRA adapter, saved by peft, for a Mistral narrower than the tiny test model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    config = MistralConfig(vocab_size=32000, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    model = get_peft_model(
        MistralForCausalLM(config),
        LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    model.save_pretrained(folder)
    return folder


def test_a_failed_merge_leaves_no_output(place: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from trainer.cli import main

    adapter = _mismatched_adapter(tmp_path / "other-base-adapter")
    out = tmp_path / "merged"
    assert main(["merge", "--base", place["base"], "--adapter", str(adapter), "--out", str(out)]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "do not fit the base model" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "other-base-adapter"
    ]  # no partial, no hidden folder

    corrupt = tmp_path / "corrupt-adapter"
    shutil.copytree(adapter, corrupt)
    (corrupt / "adapter_model.safetensors").write_bytes(b"\x00" * 64)
    assert main(["merge", "--base", place["base"], "--adapter", str(corrupt), "--out", str(out)]) == 2
    assert "cannot be loaded" in _one_line_error(capsys.readouterr().err)
    assert not out.exists() and not list(tmp_path.glob(".merged*"))


def test_overwrite_replaces_only_what_qlora_trainer_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from trainer.cli import main

    out = tmp_path / "tiny"
    args = ["tiny-model", "--out", str(out), "--layers", "1", "--hidden", "16"]
    assert main(args) == 0
    marker = json.loads((out / ".qlora-trainer.json").read_text(encoding="utf-8"))
    assert marker["command"] == "tiny-model" and (out / "config.json").is_file()
    capsys.readouterr()
    assert main(args) == 2
    assert "holds an earlier 'tiny-model' output; use --overwrite" in _one_line_error(capsys.readouterr().err)
    (out / "stray.txt").write_text("left from before\n", encoding="utf-8")
    assert main([*args, "--seed", "1", "--overwrite"]) == 0
    assert not (out / "stray.txt").exists()
    assert json.loads((out / "config.json").read_text(encoding="utf-8"))["hidden_size"] == 16
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]  # no staging or old copy left beside it


def test_every_option_is_described_and_required_ones_are_marked(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer.cli.commands import build_parser

    monkeypatch.setenv("COLUMNS", "1000")  # one line per option, no wrapped paths
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    texts = [parser.format_help()]
    assert {"train", "merge", "perplexity", "tiny-model"} <= set(sub.choices)
    for name, command in sub.choices.items():
        text = command.format_help()
        texts.append(text)
        for action in command._actions:
            if action.help == "==SUPPRESS==" or not action.option_strings:
                continue
            assert action.help, f"{name} {action.option_strings} has no help"
            entry = next(
                line for line in text.splitlines() if line.strip().startswith(action.option_strings[0])
            )
            must_say = (
                "(required"
                if action.required or (name == "train" and action.dest in ("dataset", "base", "out"))
                else None
            )
            if must_say:
                assert must_say in entry, f"{name}: {entry!r} is not marked required"
    mentioned = {m for text in texts for m in re.findall(r"(?:recipes|docs)/[\w./-]+\.(?:toml|md)", text)}
    assert "recipes/train-paper-analog.toml" in mentioned
    assert [m for m in mentioned if not (ROOT / m).is_file()] == []


def test_version(capsys: pytest.CaptureFixture) -> None:
    from trainer.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    out = capsys.readouterr().out
    assert re.fullmatch(rf"qlora-trainer {re.escape(declared)} \(torch [^,]+, transformers [^)]+\)\n", out), (
        out
    )

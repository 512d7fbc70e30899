"""The offline try-out of docs/training.md, run exactly as written there, with no network at all."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT

MODULES = {".venv/bin/dataset-builder": "dataset_builder", ".venv/bin/qlora-trainer": "trainer"}


def _commands(markdown: Path, heading: str) -> list[list[str]]:
    """The shell commands of the first ```bash block after ``heading``."""
    text = markdown.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, f"no bash block after {heading!r} in {markdown}"
    return [shlex.split(line) for line in block.group(1).replace("\\\n", " ").splitlines() if line.strip()]


def test_readme_shows_the_same_try_out() -> None:
    docs = _commands(ROOT / "docs" / "training.md", "## Try it offline")
    assert _commands(ROOT / "README.md", "## Try it offline") == docs


def test_try_out_runs_offline_as_documented(tmp_path: Path) -> None:
    commands = _commands(ROOT / "docs" / "training.md", "## Try it offline")
    assert [c[0] for c in commands] == [".venv/bin/dataset-builder"] + [".venv/bin/qlora-trainer"] * 4
    (tmp_path / "recipes").symlink_to(ROOT / "recipes")  # the commands run from a checkout's root
    with socket.socket() as s:  # a Hub address where nothing listens: any network use would fail
        s.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{s.getsockname()[1]}"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_ENDPOINT": nowhere,
        "HF_HOME": str(tmp_path / "hf-home"),
    }
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_CACHE"):
        env.pop(name, None)
    env["DATASET_BUILDER_REGISTRY"] = str(tmp_path / "elsewhere")  # the documented --registry must be used
    started = time.monotonic()
    for command in commands:
        argv = [sys.executable, "-m", MODULES[command[0]], *command[1:]]
        proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{shlex.join(command)}\n{proc.stderr[-3000:]}"
    elapsed = time.monotonic() - started

    adapter = tmp_path / "adapters" / "tiny"
    provenance = json.loads((adapter / "provenance.json").read_text(encoding="utf-8"))
    assert provenance["metrics"]["global_step"] == 20 and provenance["training_config"]["load_in_4bit"]
    assert sorted(p.name for p in (adapter / "checkpoints").iterdir()) == ["checkpoint-10", "checkpoint-20"]
    assert (tmp_path / "merged" / "tiny" / "model.safetensors").is_file()
    report = json.loads((tmp_path / "reports" / "tiny" / "perplexity.json").read_text(encoding="utf-8"))
    base, tuned = (
        report["results"][m]["python-ru-sample@0.1.0:test"]["perplexity"] for m in ("base", "tiny")
    )
    assert 16_000 < base < 64_000  # a random model over 32,000 pieces
    assert tuned < base  # trained on the sample's train split, scored on its test split
    print(f"try-out: {elapsed:.0f} s")

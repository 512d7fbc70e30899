"""README.md followed top to bottom as a new user would: every shell block (and the Python one) in
the order the page shows them, in a fresh copy of the checkout, with no network, twice: an Argos
package installed before ``make demo``, and one installed after it.

``make demo`` runs from the real Makefile (its ``setup`` is up to date: ``.venv/bin`` holds
launchers of this checkout's code, so nothing is installed). The stand-in for the real en->ru 1.9
package is ``$DATASET_BUILDER_STAND_IN_PACKAGE``, else the Argos-sized benchmark package in
``../shared/models`` beside the repository, else the tiny real package the suite builds once
(random weights, as the benchmark package has: what is followed is the README's path, not the
quality of a translation): following the README with a package installed is what it is for, so
that step never skips. Steps marked ``needs:`` in the README (the Hub,
a GPU, the real package) are left out, each named; ``make test`` is the suite this test runs in.
The second order leaves out the try-out's steps after its build when that build published the same
content as the first order's (named too): the same commands on the same bytes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT

STAND_IN_ENV = "DATASET_BUILDER_STAND_IN_PACKAGE"
SHARED_STAND_IN = ROOT.parent / "shared" / "models" / "translate-en_ru-bench.argosmodel"


@pytest.fixture(scope="module")
def stand_in(tiny_argos: dict) -> Path:
    """The en->ru package the README's install step gets: the file ``$DATASET_BUILDER_STAND_IN_PACKAGE``
    names (it must exist), else the Argos-sized benchmark package in ``../shared/models`` beside the
    repository, else the tiny real package the other tests use (SentencePiece, a random Marian
    model through CTranslate2, MiniSBD), made once per run: a clone with nothing beside it follows
    the README with a real package installed, never a skipped step."""
    named = os.environ.get(STAND_IN_ENV)
    if named:
        assert Path(named).is_file(), f"{named}: ${STAND_IN_ENV} names no .argosmodel file"
        return Path(named)
    if SHARED_STAND_IN.is_file():
        return SHARED_STAND_IN
    return tiny_argos["archive"]


REF = "python-ru-sample@0.1.0"
# What the README marks as needing what this test has not, and the one step it runs with the
# stand-in package instead of the real one.
LEFT_OUT = {
    "make test": "the test suite this test is part of",
    "qlora-trainer train --config recipes/train-paper-analog.toml": "needs: Hub, GPU",
    "qlora-trainer perplexity --base HuggingFaceH4/zephyr-7b-beta": "needs: Hub, GPU",
    "dataset-builder build recipes/humaneval-ru.toml": "needs: the 1.9 package",
    "qlora-trainer benchmark --base HuggingFaceH4/zephyr-7b-beta": "needs: Hub, GPU",
}
WITH_STAND_IN = "dataset-builder models install translate-en_ru-1_9.argosmodel"
TRY_OUT_BUILD = "dataset-builder --registry tryout build recipes/sample.toml"
# The try-out's steps after its build read only what that build published and what they write
# themselves. The order that comes second leaves them out when its try-out version has the content
# hash of the one the first order trained on (so their inputs are the same bytes): the cost of the
# second run is the part of the README that differs between the two orders.
_TRIED: dict[str, str] = {}  # try-out content hash -> the order that ran the try-out on it


def _blocks(markdown: Path) -> list[tuple[str, str]]:
    """``(language, text)`` of every fenced bash or python block, in page order."""
    text = markdown.read_text(encoding="utf-8")
    return re.findall(r"```(bash|python)\n(.*?)```", text, re.S)


def _steps(block: str) -> list[tuple[str, str]]:
    """``(command, comment)`` per command line of a shell block (continuations joined)."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        if not line.strip():
            continue
        command, _, comment = line.partition("#")
        out.append((" ".join(shlex.split(command)), comment.strip()))
    return out


def _label(command: str) -> str:
    return command.removeprefix(".venv/bin/")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _manifest(work: Path, registry: str) -> dict:
    path = work / registry / "python-ru-sample" / "0.1.0" / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory, stand_in: Path) -> Path:
    """What a fresh clone holds that the README's commands read, with a ``.venv`` whose
    launchers run this checkout's code, made after the Makefile so ``setup`` is up to date."""
    assert stand_in.is_file()
    root = tmp_path_factory.mktemp("checkout")
    for name in ("README.md", "Makefile", "pyproject.toml"):
        shutil.copy2(ROOT / name, root / name)
    shutil.copytree(ROOT / "recipes", root / "recipes", ignore=shutil.ignore_patterns("__pycache__"))
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, args in (
        ("python", ""),
        ("dataset-builder", " -m dataset_builder"),
        ("qlora-trainer", " -m trainer"),
    ):
        launcher = bin_dir / name
        launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}"{args} "$@"\n', encoding="utf-8")
        launcher.chmod(0o755)
    (root / ".venv" / ".installed").touch()
    return root


@pytest.fixture(scope="module")
def translations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One translation cache for both orders: the same sentences through the same package."""
    return tmp_path_factory.mktemp("translation-cache")


@pytest.mark.parametrize("order", ["package before make demo", "package after make demo"])
def test_the_readme_top_to_bottom(
    order: str, checkout: Path, translations: Path, stand_in: Path, tmp_path: Path
) -> None:
    work = tmp_path / "clone"
    shutil.copytree(checkout, work, symlinks=True)
    (work / ".cache").symlink_to(translations)  # recipes/sample.toml: cache_path = "../.cache/..."
    home = tmp_path / "home"
    nowhere = f"http://127.0.0.1:{_free_port()}"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HF_", "DATASET_BUILDER_", "ARGOS_", "TRANSFORMERS_"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        HOME=str(home),  # packages, registries and caches by default under the user's home: this one
        HF_ENDPOINT=nowhere,  # no Hub: any use of the network fails
        ARGOS_PACKAGE_INDEX=f"{nowhere}/",  # no Argos index either
        HF_HUB_DISABLE_TELEMETRY="1",
    )

    def run(command: str) -> str:
        started = time.monotonic()
        proc = subprocess.run(
            command, shell=True, cwd=work, env=env, capture_output=True, text=True, timeout=600
        )
        timings.append((time.monotonic() - started, command[:70]))
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"{command}\n{output[-3000:]}"
        assert "Traceback" not in output, f"{command}\n{output[-3000:]}"
        return output

    timings: list[tuple[float, str]] = []
    old_umask = os.umask(0o022)
    try:
        if order == "package before make demo":
            run(f".venv/bin/dataset-builder models install {shlex.quote(str(stand_in))}")
        left_out: list[str] = []
        ran: list[str] = []
        same_as: str | None = None
        for language, block in _blocks(work / "README.md"):
            if language == "python":
                run(f".venv/bin/python -c {shlex.quote(block)}")
                ran.append("python: dataset_builder.load")
                continue
            for command, comment in _steps(block):
                label = _label(command)
                if label.startswith(WITH_STAND_IN):
                    run(f".venv/bin/dataset-builder models install {shlex.quote(str(stand_in))}")
                    ran.append(f"{label} (with the stand-in package)")
                elif any(label.startswith(step) for step in LEFT_OUT):
                    assert "needs:" in comment or label == "make test", f"{label}: not marked in the README"
                    left_out.append(
                        f"{label}  ({next(v for k, v in LEFT_OUT.items() if label.startswith(k))})"
                    )
                elif same_as is not None:
                    left_out.append(f"{label}  (same input as '{same_as}', which ran it)")
                else:
                    assert "needs:" not in comment, f"{label}: marked as needing more, yet not left out"
                    output = run(command)
                    if label == "make demo" and order == "package after make demo":
                        # No package yet, and no index to fetch one from: the install says why.
                        assert "error: " in output and "Argos package index is unreachable" in output
                    elif label != "make demo":
                        assert "error:" not in output, f"{command}\n{output}"
                    ran.append(label)
                    if label == TRY_OUT_BUILD:
                        tried = _manifest(work, "tryout")["content_hash"]
                        same_as = _TRIED.get(tried)
                        _TRIED.setdefault(tried, order)
    finally:
        os.umask(old_umask)
    print(f"\n{order}: ran {len(ran)} steps ({', '.join(f'{t:.0f} s {c}' for t, c in timings)}); left out:")
    for label in left_out:
        print(f"  {label}")
    needs = {next((k for k in LEFT_OUT if label.startswith(k)), None) for label in left_out} - {None}
    assert sorted(needs) == sorted(LEFT_OUT) and TRY_OUT_BUILD in ran

    def translation(registry: str) -> dict:
        return next(s for s in _manifest(work, registry)["stages"] if s["stage"] == "translate")["counters"]

    # make demo published with whatever package there was; the try-out's own registry with the
    # stand-in either way.
    stand_in_sha = translation("tryout")["package"]["sha256"]
    if order == "package before make demo":
        assert translation("registry")["package"]["sha256"] == stand_in_sha
    else:
        assert "skipped" in translation("registry") and "package" not in translation("registry")

    # The card counts the rows sent for translation, not only the ones that passed its checks:
    # counted here from the rejected rows themselves.
    import pyarrow.parquet as pq

    version = work / "tryout" / "python-ru-sample" / "0.1.0"
    rejected = (
        pq.read_table(version / "rejected" / "rejected.parquet").select(["stage", "reason"]).to_pylist()
    )
    failed = sum(r["stage"] == "translate" and r["reason"] != "other_language" for r in rejected)
    done = translation("tryout").get("rows_translated", 0)
    card = (version / "README.md").read_text(encoding="utf-8")
    assert failed > 0 and f"{done} rows translated of {done + failed} attempted ({failed} failed" in card

    if same_as is not None:
        return  # the try-out's outputs are checked in the order that made them
    adapter = work / "adapters" / "tiny"
    provenance = json.loads((adapter / "provenance.json").read_text(encoding="utf-8"))
    assert provenance["metrics"]["global_step"] == 20 and provenance["training_config"]["load_in_4bit"]
    assert sorted(p.name for p in (adapter / "checkpoints").iterdir()) == ["checkpoint-10", "checkpoint-20"]
    assert (work / "merged" / "tiny" / "model.safetensors").is_file()
    report = json.loads((work / "reports" / "tiny" / "perplexity.json").read_text(encoding="utf-8"))
    base, tuned = (report["results"][m][f"{REF}:test"]["perplexity"] for m in ("base", "tiny"))
    assert 16_000 < base < 64_000  # a random model over 32,000 pieces
    assert tuned < base  # trained on the sample's train split, scored on its test split
    for folder in ("models/tiny-mistral", "adapters/tiny", "merged/tiny", "reports/tiny"):
        mode = stat.S_IMODE((work / folder).stat().st_mode)
        assert mode == 0o755, f"{folder}: mode {mode:o}, not what umask 022 gives"
    # Every package went where the README's user keeps them: under this home, not the real one.
    assert (home / ".local" / "share" / "dataset-builder" / "argos-packages").is_dir()

"""SIGKILL at random moments: no partial version, no half-installed package, no cache entry served
for a model other than the one that wrote it."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from conftest import ROOT, write_jsonl

from dataset_builder.cli import main
from dataset_builder.registry.store import Registry
from dataset_builder.testing import EN_TEXT
from dataset_builder.translation import packages
from dataset_builder.translation.engine import Engine

_SIDECAR = ".dataset-builder.json"
_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _tree(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` by relative path, the install's sidecar left out."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file() and p.name != _SIDECAR
    }


def _kill_after(cmd: list[str], delay: float) -> None:
    """Start ``cmd``, wait until it says 'ready' (if it does), then ``delay`` seconds, then SIGKILL."""
    proc = subprocess.Popen(cmd, env=_ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    if cmd[1] == "-c":
        assert proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()


def test_killed_installs_never_leave_a_half_installed_package(tmp_path: Path, tiny_argos: dict) -> None:
    archive = tiny_argos["archive"]
    with zipfile.ZipFile(archive) as zf:
        top = zf.namelist()[0].split("/", 1)[0]
        expected = {
            name.split("/", 1)[1]: hashlib.sha256(zf.read(name)).hexdigest()
            for name in zf.namelist()
            if not name.endswith("/")
        }
    # Installs over and over, into three folders in turn: fresh installs first, then replacements.
    script = (
        "import sys\nfrom dataset_builder.translation.packages import install\n"
        "print('ready', flush=True)\ni = 0\n"
        "while True:\n    install(sys.argv[1], f'{sys.argv[2]}/r{i % 3}')\n    i += 1\n"
    )
    rng = random.Random(11)
    roots = [tmp_path / f"r{i}" for i in range(3)]
    seen_complete = 0
    for _ in range(10):
        _kill_after([sys.executable, "-c", script, str(archive), str(tmp_path)], rng.uniform(0.0, 0.4))
        for root in roots:
            if not root.exists():
                continue
            visible = [p for p in root.iterdir() if not p.name.startswith(".")]
            assert [p.name for p in visible] in ([], [top])
            for folder in visible:
                assert _tree(folder) == expected  # every file, whole
                assert json.loads((folder / _SIDECAR).read_text(encoding="utf-8"))["sha256"]
                seen_complete += 1
            assert [p.path for p in packages.installed(root)] == visible
    assert seen_complete > 0
    # The next install in each folder succeeds and clears what killed installs left behind.
    for root in roots:
        package = packages.install(archive, root)
        assert _tree(package.path) == expected
        assert [p.name for p in root.iterdir()] == [top]


def test_a_package_without_its_sidecar_is_named_by_its_files(tmp_path: Path, tiny_argos: dict) -> None:
    root = tmp_path / "p"
    shutil.copytree(tiny_argos["packages_dir"], root)
    folder = next(p for p in root.iterdir() if not p.name.startswith("."))
    (folder / _SIDECAR).unlink()
    digest = hashlib.sha256()
    for rel, sha in sorted(_tree(folder).items()):
        digest.update(f"{rel}\0{(folder / rel).stat().st_size}\0{sha}\n".encode())
    assert packages.installed(root)[0].sha256 == digest.hexdigest() != "unknown"


def _flip_weights(model_bin: Path) -> None:
    """Turn the signs of the largest float32 variable of a CTranslate2 model.bin (read with the
    layout CTranslate2's own writer uses: version, spec name, revision, then named arrays)."""
    data = bytearray(model_bin.read_bytes())
    pos = 4

    def string() -> None:
        nonlocal pos
        (length,) = struct.unpack_from("H", data, pos)
        pos += 2 + length

    string()
    pos += 4
    (count,) = struct.unpack_from("I", data, pos)
    pos += 4
    largest = (0, 0)
    for _ in range(count):
        string()
        rank = data[pos]
        pos += 1 + 4 * rank
        dtype = data[pos]
        (size,) = struct.unpack_from("I", data, pos + 1)
        pos += 5
        if dtype == 0 and size > largest[1]:  # 0: float32
            largest = (pos, size)
        pos += size
    start, size = largest
    assert size > 0
    for k in range(start + 3, start + size, 4):  # little-endian: the sign bit is in byte 3
        data[k] ^= 0x80
    model_bin.write_bytes(bytes(data))


def _counters(registry: Path, version: str) -> dict:
    manifest = json.loads((registry / "t" / version / "manifest.json").read_text(encoding="utf-8"))
    return next(s for s in manifest["stages"] if s["stage"] == "translate")["counters"]


def test_killed_builds_leave_no_partial_version_and_the_cache_never_serves_another_model(
    tmp_path: Path, tiny_argos: dict
) -> None:
    root = tmp_path / "packages"
    shutil.copytree(tiny_argos["packages_dir"], root)
    rng = random.Random(5)
    rows = [
        {
            "instruction": f"{rng.choice(EN_TEXT)} {rng.choice(EN_TEXT)} Case {i}.",
            "output": rng.choice(EN_TEXT),
        }
        for i in range(120)
    ]
    write_jsonl(tmp_path / "data.jsonl", rows)
    cache = tmp_path / "cache.sqlite"

    def recipe(version: str) -> Path:
        path = tmp_path / f"recipe-{version}.toml"
        path.write_text(
            f'[dataset]\nname = "t"\nversion = "{version}"\n'
            '[[sources]]\nname = "s"\nadapter = "alpaca"\npaths = ["data.jsonl"]\n'
            f'[[stages]]\ntype = "translate"\npackages_dir = "{root}"\ncache_path = "{cache}"\n'
            "chunk_sentences = 4\nbeam_size = 1\nmax_decoding_length = 24\ndetect_language = false\n"
            "verify_language = false\nmin_length_ratio = 0.0\nmax_length_ratio = 1e9\ncheck_repetition = false\n"
            '[[stages]]\ntype = "split"\ntest_ratio = 0.2\n[publish]\nmax_rejected_fraction = 1.0\n',
            encoding="utf-8",
        )
        return path

    # Installed by other means: no sidecar, so the package is known only by its files.
    folder = next(p for p in root.iterdir() if not p.name.startswith("."))
    sidecar = (folder / _SIDECAR).read_text(encoding="utf-8")
    (folder / _SIDECAR).unlink()
    registry = tmp_path / "reg"
    build_cmd = [sys.executable, "-m", "dataset_builder", "--registry", str(registry), "build"]
    for _ in range(6):
        _kill_after([*build_cmd, str(recipe("1")), "--quiet"], rng.uniform(0.3, 4.0))
        done = Registry(registry).versions()
        assert [v.ref for v in done] in ([], ["t@1"])  # never a partial one: a version verifies whole
        for info in done:
            assert Registry(registry).verify(info.ref) == []
        with sqlite3.connect(cache) if cache.exists() else sqlite3.connect(":memory:") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert main(["--registry", str(registry), "build", str(recipe("1")), "--quiet"]) == 0
    assert not list((registry / "t").glob(".staging-*"))
    first = _counters(registry, "1")
    assert first["cache_misses"] + first["cache_hits"] > 0

    # Another model under the same name, version and folder, without a sidecar and then with the
    # first model's sidecar: none of the first model's translations may be served for it.
    original = (folder / "model" / "model.bin").read_bytes()
    sentences = [*EN_TEXT, "Sort the list by value."]
    before = Engine(packages.installed(root)[0]).translate(sentences)
    _flip_weights(folder / "model" / "model.bin")
    assert Engine(packages.installed(root)[0]).translate(sentences) != before  # really another model
    assert main(["--registry", str(registry), "build", str(recipe("2")), "--quiet"]) == 0
    second = _counters(registry, "2")
    assert second["cache_hits"] == 0 and second["cache_misses"] > 0
    (folder / _SIDECAR).write_text(sidecar, encoding="utf-8")
    assert main(["--registry", str(registry), "build", str(recipe("2b")), "--quiet"]) == 0
    assert _counters(registry, "2b")["cache_misses"] == 0  # the second model's own entries only
    # The first model back: its cached translations are found again.
    (folder / "model" / "model.bin").write_bytes(original)
    assert main(["--registry", str(registry), "build", str(recipe("3")), "--quiet"]) == 0
    third = _counters(registry, "3")
    assert third["cache_misses"] == 0 and third["cache_hits"] > 0

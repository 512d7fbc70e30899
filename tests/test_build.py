from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, write_jsonl

import dataset_builder
from dataset_builder.cli import main
from dataset_builder.errors import PublishError, VerificationError
from dataset_builder.publishing.pipeline import build
from dataset_builder.recipe.schema import load_recipe
from dataset_builder.registry.store import Registry
from dataset_builder.testing import alpaca_source, write_recipe

REF = "python-ru-sample@0.1.0"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def built(sample_registry: Registry) -> Registry:
    return sample_registry


def test_sample_build_is_deterministic(built: Registry, tmp_path: Path) -> None:
    other = Registry(tmp_path / "fresh")
    result = build(load_recipe(ROOT / "recipes" / "sample.toml"), other, show_progress=False)
    first = built.get(REF)
    assert result.content_hash == first.manifest["content_hash"]
    for split in ("train", "test"):
        name = f"data/{split}-00000-of-00001.parquet"
        assert _sha(result.path / name) == _sha(first.path / name)


def test_manifest_records_everything(built: Registry) -> None:
    m = built.get(REF).manifest
    assert m["recipe"]["dataset"]["name"] == "python-ru-sample"
    assert {i["path"] for i in m["inputs"]} == {
        "sample_data/alpaca.jsonl",
        "sample_data/chat_rounds.jsonl",
        "sample_data/ru_qa.jsonl",
    }
    assert all(len(i["sha256"]) == 64 for i in m["inputs"])
    assert [s["stage"] for s in m["stages"]] == [
        "load",
        "normalize",
        "quality",
        "exact_dedup",
        "near_dedup",
        "translate",
        "mt_quality",
        "near_dedup#2",
        "split",
        "decontaminate",
        "format",
        "write",
    ]
    # rows_in is counted where each stage reads, rows_out where it yields: two separate counts.
    for before, after in zip(m["stages"], m["stages"][1:], strict=False):
        assert after["rows_in"] == before["rows_out"]
    for st in m["stages"]:
        assert st["rows_in"] + st.get("rows_added", 0) - st["rows_out"] == sum(st["dropped"].values())
    assert m["rejected"]["rows"] == sum(sum(s["dropped"].values()) for s in m["stages"])
    assert m["stages"][3]["dropped"]["exact_duplicate"] >= 3
    total = sum(s["rows"] for s in m["splits"].values())
    assert total == m["stages"][-1]["rows_out"] == m["stages"][-2]["rows_out"]
    assert sum(m["splits"]["train"]["per_source"].values()) == m["splits"]["train"]["rows"]
    # Every record of every input file is accounted for, counted from the files and the published
    # Parquet here, not from the build's own numbers.
    path = built.get(REF).path
    files = {
        "alpaca-en": "alpaca.jsonl",
        "code-exercise-en": "chat_rounds.jsonl",
        "stackoverflow-ru": "ru_qa.jsonl",
    }
    published: dict[str, int] = {}
    for split in m["splits"]:
        for source in (
            pq.read_table(path / f"data/{split}-00000-of-00001.parquet").column("source").to_pylist()
        ):
            published[source] = published.get(source, 0) + 1
    rejected: dict[str, int] = {}
    for source in pq.read_table(path / "rejected" / "rejected.parquet").column("source").to_pylist():
        rejected[source] = rejected.get(source, 0) + 1
    for source, name in files.items():
        lines = (ROOT / "recipes" / "sample_data" / name).read_text(encoding="utf-8").splitlines()
        read = sum(1 for line in lines if line.strip())
        assert m["rows_by_source"][source] == {
            "read": read,
            "published": published.get(source, 0),
            "rejected": rejected.get(source, 0),
        }
        assert read == published.get(source, 0) + rejected.get(source, 0)
    assert "pyarrow" in m["environment"]["libraries"]
    card = (built.get(REF).path / "README.md").read_text(encoding="utf-8")
    assert "## Translation\n\nSkipped: no Argos package" in card  # never English presented as Russian
    assert set(m["files"]) == {
        "README.md",
        "data/train-00000-of-00001.parquet",
        "data/test-00000-of-00001.parquet",
        "rejected/rejected.parquet",
        "plots/token_lengths.png",
        "report.html",
        "croissant.json",
    }


def test_datasets_load_dataset_reads_the_version_folder(built: Registry) -> None:
    path = built.get(REF).path
    ds = datasets.load_dataset(str(path))
    assert set(ds) == {"train", "test"}
    m = built.get(REF).manifest
    assert ds["train"].num_rows == m["splits"]["train"]["rows"]
    row = ds["train"][0]
    assert row["text"].startswith("<|system|>\n</s>\n<|user|>\n")
    assert row["prompt"] + row["completion"] == row["text"]


def test_python_api_load(built: Registry) -> None:
    ds = dataset_builder.load(REF, registry=built.root)
    assert ds["test"].num_rows == built.get(REF).manifest["splits"]["test"]["rows"]
    assert set(ds["train"].column_names) >= {"row_id", "source", "source_key", "lang", "messages", "text"}


def test_rejected_rows_are_kept_with_reasons(built: Registry) -> None:
    rejected = datasets.Dataset.from_parquet(str(built.get(REF).path / "rejected" / "rejected.parquet"))
    reasons = set(rejected["reason"])
    assert {"non_string_field", "missing_column", "empty_answer", "exact_duplicate"} <= reasons
    assert all(rejected["source_key"])


def test_rebuild_is_a_noop_and_changed_content_is_refused(built: Registry, tmp_path: Path) -> None:
    recipe = load_recipe(ROOT / "recipes" / "sample.toml")
    before = built.get(REF).manifest["built_at"]
    again = build(recipe, built, show_progress=False)
    assert not again.published and built.get(REF).manifest["built_at"] == before
    changed = (
        (ROOT / "recipes" / "sample.toml")
        .read_text(encoding="utf-8")
        .replace("test_ratio = 0.1", "test_ratio = 0.3")
    )
    path = ROOT / "recipes" / "_changed_sample.toml"
    path.write_text(changed, encoding="utf-8")
    try:
        # Found before any stage runs: the recipe differs from the one the version was built from.
        with pytest.raises(
            PublishError, match=r"differs from it in its recipe key stages\[\d+\]\.test_ratio;"
        ):
            build(load_recipe(path), built, show_progress=False)
    finally:
        path.unlink()


def test_verify_catches_a_changed_byte(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "reg")
    result = build(load_recipe(ROOT / "recipes" / "sample.toml"), registry, show_progress=False, limit=40)
    assert registry.verify(result.ref) == []
    data = result.path / "data" / "train-00000-of-00001.parquet"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    problems = registry.verify(result.ref)
    assert len(problems) == 1 and problems[0].startswith("data/train-00000-of-00001.parquet: sha256")
    with pytest.raises(VerificationError):
        dataset_builder.load(result.ref, registry=registry.root)
    assert main(["--registry", str(registry.root), "verify", result.ref]) == 4


def test_limit_publishes_a_marked_version(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "reg")
    result = build(load_recipe(ROOT / "recipes" / "sample.toml"), registry, show_progress=False, limit=10)
    assert result.ref == "python-ru-sample@0.1.0+limit10"
    assert result.manifest["stages"][0]["rows_in"] == 30


def test_killed_build_leaves_no_version(tmp_path: Path) -> None:
    from synthetic_corpus import write_corpus

    # Enough rows that the build is still running when it is killed (checked below), few enough
    # that the build after it is quick.
    write_corpus(tmp_path / "data", rows=6_000, seed=1)
    sources = [
        alpaca_source("data/alpaca.jsonl", name="a"),
        {"name": "c", "adapter": "chat_rounds", "paths": ["data/chat_rounds.jsonl"]},
        {
            "name": "r",
            "adapter": "qa",
            "paths": ["data/ru_qa.jsonl"],
            "columns": {"question": "вопрос", "answer": "ответ"},
        },
    ]
    recipe = write_recipe(tmp_path, sources)
    registry = tmp_path / "reg"
    cmd = [
        sys.executable,
        "-m",
        "dataset_builder",
        "--registry",
        str(registry),
        "build",
        str(recipe),
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list((registry / "t").glob(".staging-*")) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    assert proc.poll() is None, "the build finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert Registry(registry).versions() == []
    assert not (registry / "t" / "1.0.0").exists()
    # The next build cleans the dead build's staging folder and publishes normally.
    assert main(["--registry", str(registry), "build", str(recipe), "--quiet"]) == 0
    assert [v.ref for v in Registry(registry).versions()] == ["t@1.0.0"]
    assert not list((registry / "t").glob(".staging-*"))


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dataset_builder", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.parametrize(
    ("records", "publish", "expected"),
    [
        (
            '{"instruction": "a", "output": "b"}\n{"instruction": "a", "output"\n',
            "",
            "data.jsonl:2: invalid JSON",
        ),
        (b'{"instruction": "caf\xe9", "output": "b"}\n', "", "data.jsonl:1: not valid UTF-8"),
        ('{"instruction": "a", "answer": "b"}\n', "", "data.jsonl:1: missing column 'output' or 'response'"),
        (
            '{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": ["b"]}\n',
            "[publish]\nmax_rejected_rows = 0",
            "1 of 2 rows rejected, over max_rejected_rows 0 in [publish]: load/non_string_field 1 "
            "(e.g. data.jsonl:2: key 'output' is list",
        ),
        ("", "", "data.jsonl: file is empty"),
        (
            '{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": "'
            + "x" * 10_500_000
            + '"}\n',
            "[publish]\nmax_rejected_rows = 0",
            "load/row_too_large 1 (e.g. data.jsonl:2: 10500035 bytes > max_row_bytes 1000000)",
        ),
    ],
)
def test_bad_input_is_one_line_error_and_nothing_published(
    tmp_path: Path, records: str | bytes, publish: str, expected: str
) -> None:
    data = tmp_path / "data.jsonl"
    data.write_bytes(records if isinstance(records, bytes) else records.encode("utf-8"))
    recipe = write_recipe(tmp_path, alpaca_source(), publish=publish)
    proc = _cli(["--registry", str(tmp_path / "reg"), "build", str(recipe), "--quiet"], tmp_path)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert Registry(tmp_path / "reg").versions() == []


def test_unknown_recipe_key_via_cli_and_debug_traceback(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "data.jsonl", [{"instruction": "a", "output": "b"}])
    recipe = write_recipe(tmp_path, alpaca_source(colour="red"))
    proc = _cli(["build", str(recipe)], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {recipe}: key 'sources[0].colour': unknown key"
    proc = _cli(["--debug", "build", str(recipe)], tmp_path)
    assert "Traceback" in proc.stderr


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys\nfrom dataset_builder.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'bitsandbytes', 'argostranslate', 'ctranslate2',"
        " 'datasets') if m in sys.modules]\nprint(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("[]")


def test_list_and_show_commands(built: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--registry", str(built.root), "list"]) == 0
    assert REF in capsys.readouterr().out
    assert main(["--registry", str(built.root), "show", REF]) == 0
    out = capsys.readouterr().out
    assert "exact_dedup" in out and "exact_duplicate" in out and "stackoverflow-ru" in out
    assert main(["--registry", str(built.root), "show", "python-ru-sample@9.9"]) == 3


def test_an_empty_split_is_not_published(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "data.jsonl", [{"instruction": f"task {i}", "output": "x"} for i in range(5)])
    stages = '[[stages]]\ntype = "split"\ntest_ratio = 0.0\n'
    result = build(load_recipe(write_recipe(tmp_path, alpaca_source(), stages=stages)), Registry(tmp_path / "r"),
                   show_progress=False)  # fmt: skip
    assert set(result.manifest["splits"]) == {"train"}
    assert not (result.path / "data" / "test-00000-of-00001.parquet").exists()
    ds = datasets.load_dataset(str(result.path))
    assert set(ds) == {"train"} and ds["train"].num_rows == 5


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "data.parquet",
            b"PAR1 this is not parquet at all",
            "data.parquet: not a readable Parquet file (Parquet magic bytes not found",
        ),
        (
            "data.json",
            b'[{"instruction": "a", "output": "b"}, {"instr',
            "data.json:1: invalid JSON (Unterminated string",
        ),
        ("data.csv", b"instruction,output\na,b\n\xff\xfe,c\n", "data.csv:3: not valid UTF-8 (byte 0xff)"),
        ("data.jsonl.gz", b"\x1f\x8b\x08\x00 truncated", "data.jsonl.gz:1: cannot read ("),
    ],
)
def test_corrupt_source_files_are_one_line_via_the_cli(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    (tmp_path / name).write_bytes(content)
    recipe = write_recipe(tmp_path, alpaca_source(name))
    proc = _cli(["--registry", str(tmp_path / "reg"), "build", str(recipe), "--quiet"], tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path}/") and expected in lines[0], (
        proc.stderr
    )
    assert "Traceback" not in proc.stderr
    assert Registry(tmp_path / "reg").versions() == []


def test_sources_with_different_own_columns_publish_together(tmp_path: Path) -> None:
    """alpaca keeps its `input` as a column; a qa source has none: its rows publish it null."""
    write_jsonl(
        tmp_path / "a.jsonl", [{"instruction": "Reverse this string.", "input": "racecar", "output": "x"}]
    )
    write_jsonl(tmp_path / "q.jsonl", [{"question": "What is a list?", "answer": "A sequence."}])
    sources = [alpaca_source("a.jsonl", name="a"), {"name": "q", "adapter": "qa", "paths": ["q.jsonl"]}]
    recipe = write_recipe(tmp_path, sources, [{"type": "split", "test_ratio": 0.0}])
    assert main(["--registry", str(tmp_path / "reg"), "build", str(recipe), "--quiet"]) == 0
    rows = pq.read_table(
        tmp_path / "reg" / "t" / "1.0.0" / "data" / "train-00000-of-00001.parquet"
    ).to_pylist()
    assert sorted((r["source"], r["input"]) for r in rows) == [("a", "racecar"), ("q", None)]

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import HubServer

from dataset_builder.registry.store import Registry

TOKEN = "hf_test_token_do_not_log_1234567890"
REF = "python-ru-sample@0.1.0"


@pytest.fixture
def hub(tmp_path: Path):
    with HubServer() as server:
        yield server, server.client_env(tmp_path, TOKEN)


@pytest.fixture
def local_version(sample_registry: Registry) -> Registry:
    return sample_registry


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dataset_builder", *args], env=env, capture_output=True, text=True
    )


def test_push_tag_pull_and_load_round_trip(hub, local_version: Registry, tmp_path: Path) -> None:
    server, env = hub
    proc = _cli(env, "--registry", str(local_version.root), "push", REF, "--repo", "org/python-ru")
    assert proc.returncode == 0, proc.stderr
    repo = server.state.repos["org/python-ru"]
    assert "0.1.0" in repo.tags
    tagged = repo.commits[repo.tags["0.1.0"]]
    assert {"README.md", "manifest.json", "data/train-00000-of-00001.parquet"} <= set(tagged)
    assert TOKEN in server.state.tokens_seen  # the token was sent...
    for text in (proc.stdout, proc.stderr, *(d.decode("utf-8", "replace") for d in tagged.values())):
        assert TOKEN not in text  # ...and never written to output, manifest or card

    # Pushing the same content again is a no-op; nothing new is committed.
    calls = server.state.commit_calls
    assert (
        _cli(env, "--registry", str(local_version.root), "push", REF, "--repo", "org/python-ru").returncode
        == 0
    )
    assert server.state.commit_calls == calls

    # The repo is not named after the dataset: push says how to pull it back, and a pull without
    # --as refuses, in one line naming both names, before anything is written.
    assert proc.stdout.strip().splitlines()[-1] == (
        "note: org/python-ru is not named python-ru-sample; pull it back with "
        "`dataset-builder pull org/python-ru@0.1.0 --as python-ru-sample`"
    )
    fresh = tmp_path / "fresh-registry"
    proc = _cli(env, "--registry", str(fresh), "pull", "org/python-ru@0.1.0")
    assert proc.returncode == 3 and proc.stderr.strip().splitlines() == [
        "error: org/python-ru@0.1.0: its manifest.json names the dataset 'python-ru-sample', not "
        "'python-ru' (the repo's name); to publish it, name it: pull org/python-ru@0.1.0 --as "
        "python-ru-sample (or --as NAME)"
    ], proc.stderr
    assert not fresh.exists() or [p.name for p in fresh.iterdir()] == []
    proc = _cli(env, "--registry", str(fresh), "pull", "org/python-ru@0.1.0", "--as", "python-ru-sample")
    assert proc.returncode == 0, proc.stderr
    pulled = Registry(fresh).get(REF)
    assert pulled.manifest["content_hash"] == local_version.get(REF).manifest["content_hash"]
    assert Registry(fresh).verify(REF) == []

    # --as another name: published under it; the registry's manifest says so, and where it came from.
    renamed = tmp_path / "renamed-registry"
    proc = _cli(env, "--registry", str(renamed), "pull", "org/python-ru@0.1.0", "--as", "python-ru")
    assert proc.returncode == 0 and "-> python-ru@0.1.0 " in proc.stdout, proc.stderr
    info = Registry(renamed).get("python-ru@0.1.0")
    repo = server.state.repos["org/python-ru"]
    assert info.manifest["pulled_from"] == {
        "repo": "org/python-ru",
        "commit": repo.tags["0.1.0"],
        "name": "python-ru-sample",
    }
    assert info.manifest["content_hash"] == pulled.manifest["content_hash"]
    assert Registry(renamed).verify("python-ru@0.1.0") == []
    proc = _cli(env, "--registry", str(renamed), "pull", "org/python-ru@0.1.0", "--as", "../x")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: --as: invalid dataset name '../x' (use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 96 characters)"
    ], proc.stderr

    # The Python API refuses the same way; a ref pulled with --as loads by its Hub ref afterwards.
    code = (
        "import json, datasets, dataset_builder\n"
        "from dataset_builder.errors import PublishError\n"
        "try:\n"
        f"    dataset_builder.load('org/python-ru@0.1.0', registry={str(tmp_path / 'other')!r})\n"
        "except PublishError as exc:\n"
        "    print(exc)\n"
        "a = datasets.load_dataset('org/python-ru', revision='0.1.0')\n"
        f"b = dataset_builder.load('org/python-ru@0.1.0', registry={str(fresh)!r})\n"
        "print(json.dumps({s: [a[s].num_rows, b[s].num_rows, a[s]['row_id'] == b[s]['row_id']] for s in a}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "names the dataset 'python-ru-sample', not 'python-ru'" in proc.stdout.strip().splitlines()[0]
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    m = local_version.get(REF).manifest
    assert counts == {s: [m["splits"][s]["rows"], m["splits"][s]["rows"], True] for s in ("train", "test")}


def test_failed_uploads_retry_and_never_tag_an_incomplete_commit(hub, local_version: Registry) -> None:
    server, env = hub
    server.state.fail_commits = 2  # two 500s, then the commit lands
    proc = _cli(env, "--registry", str(local_version.root), "push", REF, "--repo", "org/retry")
    assert proc.returncode == 0, proc.stderr
    assert "retrying" in proc.stderr and server.state.commit_calls == 3
    assert "0.1.0" in server.state.repos["org/retry"].tags

    server.state.fail_commits = 99  # the server never recovers: no commit, so no tag
    proc = _cli(env, "--registry", str(local_version.root), "push", REF, "--repo", "org/broken")
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()[-1]) < 400
    assert server.state.repos["org/broken"].tags == {}


def test_pull_refuses_tampered_files(hub, local_version: Registry, tmp_path: Path) -> None:
    server, env = hub
    assert (
        _cli(
            env, "--registry", str(local_version.root), "push", REF, "--repo", "org/python-ru-sample"
        ).returncode
        == 0
    )
    repo = server.state.repos["org/python-ru-sample"]
    files = repo.commits[repo.tags["0.1.0"]]
    files["data/test-00000-of-00001.parquet"] = files["data/test-00000-of-00001.parquet"][:-1] + b"\x00"
    proc = _cli(env, "--registry", str(tmp_path / "r"), "pull", "org/python-ru-sample@0.1.0")
    assert proc.returncode == 4 and "does not match its sha256" in proc.stderr
    assert Registry(tmp_path / "r").versions() == []


def test_pushing_different_content_under_an_existing_tag_is_refused(hub, local_version: Registry) -> None:
    server, env = hub
    assert (
        _cli(env, "--registry", str(local_version.root), "push", REF, "--repo", "org/immutable").returncode
        == 0
    )
    repo = server.state.repos["org/immutable"]
    manifest = json.loads(repo.commits[repo.tags["0.1.0"]]["manifest.json"])
    manifest["content_hash"] = "sha256:" + "0" * 64
    repo.commits[repo.tags["0.1.0"]]["manifest.json"] = json.dumps(manifest).encode()
    proc = _cli(env, "--registry", str(local_version.root), "push", REF, "--repo", "org/immutable")
    assert proc.returncode == 3 and "versions are immutable" in proc.stderr


def test_a_hub_dataset_as_a_build_source(hub, local_version: Registry, tmp_path: Path) -> None:
    """A source of type "hub" read over real HTTP: the version pushed above, by id and tag."""
    server, env = hub
    assert (
        _cli(env, "--registry", str(local_version.root), "push", REF, "--repo", "org/source").returncode == 0
    )
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        '[dataset]\nname = "from-hub"\nversion = "1"\n'
        '[[sources]]\nname = "hub-src"\ntype = "hub"\nhub_id = "org/source"\nrevision = "0.1.0"\n'
        'split = "train"\nadapter = "messages"\nlanguage = "ru"\n'
        '[[stages]]\ntype = "exact_dedup"\n',
        encoding="utf-8",
    )
    proc = _cli(env, "--registry", str(tmp_path / "reg"), "build", str(recipe), "--quiet")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "reg" / "from-hub" / "1" / "manifest.json").read_text(encoding="utf-8"))
    source_input = manifest["inputs"][0]
    repo = server.state.repos["org/source"]
    assert source_input["commit"] == repo.tags["0.1.0"]
    assert source_input["rows"] == local_version.get(REF).manifest["splits"]["train"]["rows"]
    assert manifest["splits"]["train"]["rows"] == source_input["rows"]


def _build(tmp_path: Path, registry: Path, version: str, stages: str) -> str:
    from conftest import alpaca_source, write_jsonl, write_recipe

    from dataset_builder.publishing.pipeline import build
    from dataset_builder.recipe.schema import load_recipe

    rows = [{"instruction": f"task number {i}", "output": f"answer {i}"} for i in range(40)]
    write_jsonl(tmp_path / "data.jsonl", rows)
    recipe = write_recipe(tmp_path, alpaca_source(), name="two-splits", version=version, stages=stages)
    return build(load_recipe(recipe), Registry(registry), show_progress=False).ref


TRAIN_ONLY = '[[stages]]\ntype = "normalize"\n\n[[stages]]\ntype = "format"\n'


def test_a_tag_holds_exactly_its_version(hub, tmp_path: Path) -> None:
    """0.1.0 has train and test, 0.2.0 only train: tag 0.2.0 must not keep 0.1.0's test file."""
    from conftest import SIMPLE_STAGES

    server, env = hub
    registry = tmp_path / "reg"
    first = _build(tmp_path, registry, "0.1.0", SIMPLE_STAGES)
    second = _build(tmp_path, registry, "0.2.0", TRAIN_ONLY)
    for ref in (first, second):
        proc = _cli(env, "--registry", str(registry), "push", ref, "--repo", "org/two-splits")
        assert proc.returncode == 0, proc.stderr
    repo = server.state.repos["org/two-splits"]
    for ref in (first, second):
        info = Registry(registry).get(ref)
        expected = {*info.manifest["files"], "manifest.json", ".gitattributes"}
        assert set(repo.commits[repo.tags[info.version]]) == expected
    assert "data/test-00000-of-00001.parquet" in repo.commits[repo.tags["0.1.0"]]

    code = (
        "import json, datasets\n"
        "print(json.dumps({v: sorted(datasets.load_dataset('org/two-splits', revision=v)) for v in ('0.1.0', '0.2.0')}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {
        "0.1.0": ["test", "train"],
        "0.2.0": ["train"],
    }

    # The newest tag is what ORG/NAME@latest pulls.
    proc = _cli(env, "--registry", str(tmp_path / "fresh"), "pull", "org/two-splits@latest")
    assert proc.returncode == 0, proc.stderr
    assert "-> two-splits@0.2.0 " in proc.stdout


def test_a_push_racing_another_is_refused_not_mixed(hub, local_version: Registry) -> None:
    """The deletions are computed from the branch head: a commit that lands in between makes the
    push fail (the Hub's 412), so it never removes or keeps files it did not see."""
    from hub_server import Handler

    server, env = hub
    original = Handler._dispatch

    def move_head_before_commit(self, path, query, body):  # another client commits first
        if "/commit/" in path and self.command == "POST" and not server.state.commit_calls:
            repo = server.state.repos["org/race"]
            head = repo.branches["main"]
            repo.commits["f" * 40] = {**repo.commits[head], "other.txt": b"pushed by someone else"}
            repo.branches["main"] = "f" * 40
        return original(self, path, query, body)

    Handler._dispatch = move_head_before_commit
    try:
        proc = _cli(env, "--registry", str(local_version.root), "push", REF, "--repo", "org/race")
    finally:
        Handler._dispatch = original
    last = proc.stderr.strip().splitlines()[-1]  # above it: huggingface_hub's upload progress bars
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert last.startswith("error: ") and "the repo changed while this push was under way" in last
    assert server.state.repos["org/race"].tags == {}


def test_pulling_a_version_the_registry_has(hub, local_version: Registry, tmp_path: Path) -> None:
    import shutil

    server, env = hub
    assert (
        _cli(
            env, "--registry", str(local_version.root), "push", REF, "--repo", "org/python-ru-sample"
        ).returncode
        == 0
    )
    registry = Registry(tmp_path / "reg")
    shutil.copytree(local_version.get(REF).path, registry.root / "python-ru-sample" / "0.1.0")
    server.state.downloads.clear()
    proc = _cli(env, "--registry", str(registry.root), "pull", "org/python-ru-sample@0.1.0")
    assert proc.returncode == 0 and "-> python-ru-sample@0.1.0 " in proc.stdout, proc.stderr
    assert server.state.downloads == ["manifest.json"]  # the data already here is not fetched again

    manifest = registry.root / "python-ru-sample" / "0.1.0" / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["content_hash"] = "sha256:" + "1" * 64  # another build under the same version
    manifest.write_text(json.dumps(data), encoding="utf-8")
    (registry.root / ".hub-refs.json").unlink()
    proc = _cli(env, "--registry", str(registry.root), "pull", "org/python-ru-sample@0.1.0")
    assert proc.returncode == 3 and "already published with different content" in proc.stderr
    assert "pull org/python-ru-sample@0.1.0 into another registry" in proc.stderr

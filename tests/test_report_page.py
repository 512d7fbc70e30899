"""The report page as a reader sees it: rendered by a real browser (Debian's headless chromium, with
the network cut), its sections and counts checked against counts taken here from the version's
files and the test's own input, hostile row text shown as text, a screenshot that is not blank;
the page published, hashed and pushed with the version, and `report` printing its path."""

from __future__ import annotations

import collections
import hashlib
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from report_data import HOSTILE

from dataset_builder.cli import main
from dataset_builder.registry.store import Registry

CHROMIUM = shutil.which("chromium")
SECTIONS = [
    "funnel",
    "rejects",
    "translations",
    "near-duplicates",
    "decontamination",
    "tokens",
    "quality",
    "execution",
]


class _Dom(HTMLParser):
    """Tags seen, text per section, and table rows (cell texts) per section."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: collections.Counter[str] = collections.Counter()
        self.attrs: list[tuple[str, str, str]] = []
        self.text: dict[str, list[str]] = collections.defaultdict(list)
        self.rows: dict[str, list[list[str]]] = collections.defaultdict(list)
        self.section = ""
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        self.attrs += [(tag, k, v or "") for k, v in attrs]
        if tag == "section":
            self.section = dict(attrs).get("id") or ""
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows[self.section].append(self._row)
            self._row = None
        elif tag == "section":
            self.section = ""

    def handle_data(self, data: str) -> None:
        self.text[self.section].append(data)
        if self._cell is not None:
            self._cell.append(data)

    def joined(self, section: str) -> str:
        return "".join(self.text[section])


def _chromium(args: list[str], url: str, tmp: Path) -> subprocess.CompletedProcess:
    profile = tmp / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}",
        # The network is cut: every name resolves to nothing and every connection goes to a closed port.
        "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
        *args, url,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def rendered(report_version: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    if CHROMIUM is None:
        pytest.fail(
            "chromium is not installed: `make setup` installs it (as root), or apt-get install chromium"
        )
    tmp = tmp_path_factory.mktemp("chromium")
    page = report_version["path"] / "report.html"
    dump = _chromium(["--dump-dom"], page.as_uri(), tmp)
    assert dump.returncode == 0, dump.stderr[-2000:]
    shot = tmp / "shot.png"
    snap = _chromium(["--window-size=1280,2400", f"--screenshot={shot}"], page.as_uri(), tmp)
    assert snap.returncode == 0 and shot.is_file(), snap.stderr[-2000:]
    dom = _Dom()
    dom.feed(dump.stdout)
    return {"dom": dom, "dump": dump.stdout, "shot": shot, "html": page.read_text(encoding="utf-8")}


def _split_tables(path: Path) -> dict[str, pa.Table]:
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    return {s: pq.read_table(path / meta["file"]) for s, meta in manifest["splits"].items()}


def test_the_browser_shows_every_section_with_the_versions_counts(
    report_version: dict, rendered: dict
) -> None:
    dom: _Dom = rendered["dom"]
    path = report_version["path"]
    assert [s for s in SECTIONS if dom.joined(s)] == SECTIONS
    tables = _split_tables(path)
    published = sum(t.num_rows for t in tables.values())
    rejected = pq.read_table(path / "rejected" / "rejected.parquet")
    summary = "".join(dom.text[""])
    assert f"{published:,} rows published" in summary
    assert f"{rejected.num_rows:,} rejected" in summary

    # Funnel: the load stage read what this test wrote, per source; write put out what the files hold.
    funnel = dom.rows["funnel"]
    load = next(i for i, r in enumerate(funnel) if r[0] == "load")
    assert funnel[load][1:4] == ["all sources", "0", str(sum(report_version["read"].values()))]
    for source, n in report_version["read"].items():
        assert any(r[1] == source and r[3] == str(n) for r in funnel[load + 1 : load + 3])
    write = next(i for i, r in enumerate(funnel) if r[0] == "write")
    assert funnel[write][1:] == ["all sources", str(published), "0", "0", str(published)]

    # Every reject reason with its count, counted here from the rejected rows.
    expected = collections.Counter(
        zip(rejected["stage"].to_pylist(), rejected["reason"].to_pylist(), strict=True)
    )
    shown = {(r[0], r[1]): int(r[2]) for r in dom.rows["rejects"][1:] if len(r) == 3}
    assert shown == dict(expected)
    assert expected[("near_dedup", "near_duplicate")] == report_version["near_duplicates"]
    assert expected[("format", "too_many_tokens")] == report_version["long_rows"]

    # Translations: as many as the files hold rows with their originals, shown beside them.
    translated = sum(sum(v is not None for v in t["source_messages"].to_pylist()) for t in tables.values())
    assert translated > 0
    assert f"{translated:,} published rows were translated" in dom.joined("translations")
    assert dom.joined("translations").count("verdict: passed: published") == min(translated, 12)

    # Near duplicates: the kept row against the dropped ones; decontamination: the row and its eval item.
    assert re.search(r"cluster \w+: 1 kept, 1 dropped", dom.joined("near-duplicates"))
    hits = dom.rows["decontamination"]
    assert hits[0] == ["row (first user turn)", "eval set: item", "method", "score"]
    assert len(hits) == 2 and hits[1][1].startswith("ru-eval: ") and hits[1][2] == "minhash"
    assert "Jaccard 1.000" in hits[1][3]
    assert report_version["contaminated"]["instruction"][:60] in hits[1][0]

    # Tokens against max_tokens: the limit and the rows over it.
    tokens = dom.joined("tokens")
    assert f"max_tokens is 600: {report_version['long_rows']} rows over it were rejected" in tokens
    assert "quality" in dom.joined("quality")  # no mt_quality column in this build: the page says so
    assert "No mt_quality column" in dom.joined("quality")


def test_hostile_row_text_renders_as_text_and_nothing_is_fetched(rendered: dict) -> None:
    dom: _Dom = rendered["dom"]
    # The markup in the rows is on the page as text (twice: the rejected row and the decontaminated one)...
    text = "".join("".join(parts) for parts in dom.text.values())
    assert text.count(HOSTILE) >= 2
    # ...and never became an element: the page has no script, image, frame or outside link at all.
    assert dom.tags["script"] == 0 and dom.tags["img"] == 0 and dom.tags["iframe"] == 0
    assert all(v.startswith("#") for tag, k, v in dom.attrs if k == "href")
    assert not [(tag, k) for tag, k, _ in dom.attrs if k == "src" or k.startswith("on")]
    assert "default-src 'none'" in rendered["html"]


def test_the_screenshot_is_not_blank(rendered: dict) -> None:
    from PIL import Image

    image = Image.open(rendered["shot"]).convert("RGB")
    assert image.size == (1280, 2400)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50
    white = max(n for n, c in colours if c == (255, 255, 255))
    assert white < 0.97 * image.size[0] * image.size[1]  # text, tables and charts cover the page


def test_the_page_is_in_the_version_and_report_prints_its_path(
    report_version: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    registry: Registry = report_version["registry"]
    info = registry.get(report_version["ref"])
    for name in ("report.html", "croissant.json"):
        digest = hashlib.sha256((info.path / name).read_bytes()).hexdigest()
        assert info.manifest["files"][name]["sha256"] == digest
    assert registry.verify(info.ref) == []
    card = (info.path / "README.md").read_text(encoding="utf-8")
    assert "`report.html`" in card and "`croissant.json`" in card
    assert main(["--registry", str(registry.root), "report", info.name + "@latest"]) == 0
    assert capsys.readouterr().out == f"{info.path / 'report.html'}\n"


def test_the_page_shows_mt_quality_worst_rows_first(report_version: dict, tmp_path: Path) -> None:
    """The `mt_quality` column (written by translation scoring) on a copy of the version's rows, with
    scores set here: the page gives its distribution and ranks the lowest round-trip chrF first."""
    from dataset_builder.publishing.report_page import render_report

    folder = tmp_path / "v"
    shutil.copytree(report_version["path"], folder)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    path = folder / manifest["splits"]["train"]["file"]
    table = pq.read_table(path)
    keys = table["source_key"].to_pylist()
    translated = table["source_messages"].is_valid().to_pylist()
    quality_type = pa.struct([("round_trip_chrf", pa.float64()), ("length_ratio", pa.float64()),
                              ("target_script_share", pa.float64()), ("repetition", pa.float64()),
                              ("untranslated_share", pa.float64()), ("scored", pa.bool_())])  # fmt: skip
    values, chrf = [], {}
    for i, is_translated in enumerate(translated):
        if not is_translated:
            values.append(None)
            continue
        score = None if i % 5 == 4 else float((i * 37) % 100)  # every fifth translated row unscored
        if score is not None:
            chrf[keys[i]] = score
        values.append({"round_trip_chrf": score, "length_ratio": 1.0, "target_script_share": 0.9 - i / 100,
                       "repetition": 0.0, "untranslated_share": 0.0, "scored": score is not None})  # fmt: skip
    pq.write_table(table.append_column("mt_quality", pa.array(values, quality_type)), path)
    rejected = pq.read_table(folder / "rejected" / "rejected.parquet")
    failed = {"row_id": "f" * 32, "source": "en", "source_key": "en.jsonl:99", "stage": "translate",
              "reason": "length_ratio", "detail": "turn 2 (assistant): prose length ratio 4.20 outside [0.4, 3.5]",
              "duplicate_of": None, "raw": None,
              "messages": [{"role": "user", "content": "Sort a list.\n```python\nsorted(xs)\n```"}],
              "attempted_messages": [{"role": "user", "content": "Отсортируйте.\n```python\nsorted(ys)\n```"}]}  # fmt: skip
    rejected = pa.concat_tables([rejected, pa.Table.from_pylist([failed], schema=rejected.schema)])
    page = render_report(folder, manifest, rejected, [])
    dom = _Dom()
    dom.feed(page)
    translations = dom.joined("translations")
    assert "1 translations failed a check; 1 shown" in translations
    assert (
        f"verdict: rejected: length_ratio: {failed['detail']} · page check: 0 of 1 fenced blocks unchanged"
        in translations
    )
    quality = dom.joined("quality")
    assert (
        f"{sum(v is not None for v in values)} published rows carry mt_quality; {len(chrf)} have" in quality
    )
    signals = {r[0]: r[1:] for r in dom.rows["quality"][1:]}
    assert signals["round_trip_chrf"][:2] == [str(len(chrf)), f"{min(chrf.values()):.3f}"]
    worst_first = sorted(chrf, key=lambda k: (chrf[k], keys.index(k)))[:10]
    listed = re.findall(r"train: (\S+) · round_trip_chrf", quality)
    assert listed[: len(worst_first)] == worst_first


def test_push_carries_the_page_and_croissant_and_pull_verifies_them(
    report_version: dict, tmp_path: Path
) -> None:
    from hub_server import HubServer

    registry: Registry = report_version["registry"]
    info = registry.get(report_version["ref"])
    with HubServer() as server:
        env = server.client_env(tmp_path)

        def cli(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "-m", "dataset_builder", *args], env=env, capture_output=True, text=True
            )

        proc = cli("--registry", str(registry.root), "push", info.ref, "--repo", "org/report-test")
        assert proc.returncode == 0, proc.stderr
        repo = server.state.repos["org/report-test"]
        tagged = repo.commits[repo.tags[info.version]]
        for name in ("report.html", "croissant.json"):
            assert tagged[name] == (info.path / name).read_bytes()
        fresh = tmp_path / "fresh"
        proc = cli("--registry", str(fresh), "pull", f"org/report-test@{info.version}")
        assert proc.returncode == 0, proc.stderr
    pulled = Registry(fresh).get(info.ref)
    assert Registry(fresh).verify(info.ref) == []
    for name in ("report.html", "croissant.json"):
        assert (pulled.path / name).read_bytes() == (info.path / name).read_bytes()


def test_report_refuses_a_missing_or_altered_page_in_one_line(
    report_version: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    info = report_version["registry"].get(report_version["ref"])
    root = tmp_path / "registry"
    shutil.copytree(info.path, root / info.name / info.version)
    folder = root / info.name / info.version

    def report() -> subprocess.CompletedProcess:
        code = main(["--registry", str(root), "report", info.ref])
        out = capsys.readouterr()
        return subprocess.CompletedProcess([], code, out.out, out.err)

    (folder / "report.html").write_text("<p>not the page</p>", encoding="utf-8")
    proc = report()
    assert proc.returncode == 4 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "report.html" in proc.stderr and "verify" in proc.stderr

    # A version published before report pages: no page in its files.
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    del manifest["files"]["report.html"]
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (folder / "report.html").unlink()
    proc = report()
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert "has no report.html" in proc.stderr


def test_a_version_whose_optional_columns_hold_nothing_gets_its_page(tmp_path: Path) -> None:
    """Columns with no value at all are written as Arrow type null; nothing rejected, no tokens."""
    from dataset_builder.publishing.report_page import render_report
    from dataset_builder.rows import MESSAGES_TYPE, REJECTED_SCHEMA

    (tmp_path / "data").mkdir()
    turns = [{"role": "user", "content": "Привет <b>мир</b>"}, {"role": "assistant", "content": "Ответ"}]
    table = pa.table(
        {
            "row_id": ["a", "b"],
            "source": ["ru", "ru"],
            "source_key": ["ru.jsonl:1", "ru.jsonl:2"],
            "lang": ["ru", "ru"],
            "messages": pa.array([turns, turns], MESSAGES_TYPE),
            "source_messages": pa.nulls(2),
            "source_lang": pa.nulls(2),
            "dup_cluster": pa.nulls(2),
            "mt_quality": pa.nulls(2),
        }
    )
    pq.write_table(table, tmp_path / "data" / "train.parquet")
    manifest = {"name": "n", "version": "1.0.0", "content_hash": "sha256:x", "tool": {"name": "dataset-builder", "version": "0"},
                "recipe_sha256": "0" * 64, "recipe": {"stages": []}, "stages": [],
                "splits": {"train": {"file": "data/train.parquet", "rows": 2}}}  # fmt: skip
    dom = _Dom()
    dom.feed(render_report(tmp_path, manifest, REJECTED_SCHEMA.empty_table(), []))
    assert "2 rows published (train 2), 0 rejected" in "".join(dom.text[""])
    assert "No row was rejected" in dom.joined("rejects")
    assert "0 published rows were translated" in dom.joined("translations")
    assert "No near-duplicate" in dom.joined("near-duplicates")
    assert "No token counts" in dom.joined("tokens")
    assert "No mt_quality column" in dom.joined("quality")


def test_a_build_with_round_trip_scores_ranks_its_worst_rows(tmp_path: Path) -> None:
    """A real build through the engine door (a scrambling translator, the inverse dictionary back):
    the published page ranks the rows by the chrF the published file holds, lowest first."""
    from test_mt_quality import build as build_q
    from test_mt_quality import project

    recipe = project(tmp_path, "scrambler", {}, record=False)
    rows, _, _ = build_q(tmp_path, recipe)
    page = (tmp_path / "reg" / "q" / "1.0.0" / "report.html").read_text(encoding="utf-8")
    dom = _Dom()
    dom.feed(page)
    scored = [r for r in rows if r["mt_quality"] and r["mt_quality"]["round_trip_chrf"] is not None]
    assert len(scored) >= 3
    expected = [r["source_key"] for r in sorted(scored, key=lambda r: r["mt_quality"]["round_trip_chrf"])][
        :10
    ]
    quality = dom.joined("quality")
    listed = re.findall(r"train: (\S+) · round_trip_chrf", quality)[: len(expected)]
    scores = [
        next(r for r in scored if r["source_key"] == k)["mt_quality"]["round_trip_chrf"] for k in listed
    ]
    assert scores == sorted(scores) and sorted(listed) == sorted(expected)
    assert f"{len(scored)} have a round-trip chrF" in quality


def test_the_sample_versions_page_has_every_section_and_its_reject_counts(sample_registry: Registry) -> None:
    info = sample_registry.get("python-ru-sample@0.1.0")
    dom = _Dom()
    dom.feed((info.path / "report.html").read_text(encoding="utf-8"))
    assert [s for s in SECTIONS if dom.joined(s)] == SECTIONS
    shown = {f"{r[0]}/{r[1]}": int(r[2]) for r in dom.rows["rejects"][1:] if len(r) == 3}
    assert shown == info.manifest["rejected"]["by_stage_reason"]

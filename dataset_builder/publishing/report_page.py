"""``report.html``: one self-contained page to look at a version before training on it.

Written at publish, beside the data, from what the version holds (the manifest, the split files,
the rejected rows) and the run's per-source counts at every stage's edges. It shows the funnel, every
reject reason with examples, translations beside their originals with code marked, near-duplicate
clusters, decontamination hits, the token lengths against ``max_tokens`` and the translation quality
score (``mt_quality``) with its worst rows. Rows are sampled with a fixed seed (the page says how
many of how many), so a 65k-row version gives a page of a few hundred kilobytes, and the same
version always gives the same page. Everything that says how the build ran (executor, seconds)
sits in one section, ``#execution``; the rest is the same whichever executor built the version.

Row text is hostile: every string goes through :func:`html.escape`, the page carries no script,
and its Content-Security-Policy forbids fetching anything, so nothing in a row can run or call out.
Charts are inline SVG drawn here; there is no stylesheet, font or library from the network.
Like ``croissant.json``, the page is derived from the version and is not part of its identity.
"""

from __future__ import annotations

import html
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

REPORT = "report.html"
SEED = 0
TRANSLATIONS_SHOWN = 12
REJECTED_TRANSLATIONS_SHOWN = 6
EXAMPLES_PER_REASON = 3
CLUSTERS_SHOWN = 10
MEMBERS_SHOWN = 4
HITS_SHOWN = 50
WORST_SHOWN = 10
TURN_CHARS = 1500
TURNS_SHOWN = 6

_CHEAP_SIGNALS = ("length_ratio", "target_script_share", "repetition", "untranslated_share")
_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE = re.compile(r"`[^`\n]+`")
_HIT = re.compile(
    r"^eval set '(?P<set>[^']*)' item (?P<item>.*?): (?P<method>[a-z_]+)[: ]\s*(?P<score>.*)$", re.S
)


# --- reading the version -----------------------------------------------------------------------


class _Split:
    """One split's file: cheap columns read whole, heavy ones (turns) only for the rows shown."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self.names = set(pq.read_schema(path).names)
        cheap = [c for c in ("row_id", "source", "source_key", "lang", "source_lang", "num_tokens",
                             "dup_cluster", "mt_quality") if c in self.names]  # fmt: skip
        self.table = pq.read_table(path, columns=cheap)
        self.rows = self.table.num_rows
        self._groups: dict[int, pa.Table] = {}
        meta = pq.read_metadata(path)
        self._starts = np.cumsum([0] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)])

    def has(self, name: str, kind: str = "") -> bool:
        """The column is in the file (and, given ``kind``, of that Arrow kind: a column with no value
        at all in a version can be written as type null)."""
        if name not in self.table.column_names:
            return False
        check = {"string": pa.types.is_string, "struct": pa.types.is_struct}.get(kind)
        return check is None or check(self.table.schema.field(name).type)

    def value(self, name: str, i: int) -> Any:
        return self.table.column(name)[i].as_py() if self.has(name) else None

    def where(self, mask: pa.ChunkedArray | pa.Array) -> list[int]:
        """Indices of the rows where ``mask`` is true (null counts as false)."""
        return pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist()

    def turns(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """``messages`` and ``source_messages`` of the given rows, reading only the row groups they
        are in (the turns are most of a file's bytes; the page shows a few dozen rows)."""
        if not indices:
            return []
        heavy = [c for c in ("messages", "source_messages") if c in self.names]
        out = []
        for i in indices:
            group = int(np.searchsorted(self._starts, i, side="right")) - 1
            if group not in self._groups:
                with pq.ParquetFile(self.path) as file:
                    self._groups[group] = file.read_row_group(group, columns=heavy)
            row = self._groups[group].slice(i - int(self._starts[group]), 1).to_pylist()[0]
            out.append({"messages": row.get("messages"), "source_messages": row.get("source_messages")})
        return out


def _sample(indices: Sequence[int], k: int, salt: int) -> list[int]:
    """``k`` of ``indices`` picked with the fixed seed, in their original order."""
    if len(indices) <= k:
        return list(indices)
    rng = np.random.default_rng([SEED, salt])
    return sorted(int(indices[i]) for i in rng.choice(len(indices), size=k, replace=False))


# --- HTML pieces -------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _n(value: int | float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.3f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            if isinstance(cell, _Raw):
                cells.append(f"<td>{cell.html}</td>")
            elif isinstance(cell, int | float) and not isinstance(cell, bool):
                cells.append(f'<td class="n">{_n(cell)}</td>')
            else:
                cells.append(f"<td>{_e(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


class _Raw:
    """HTML built here from escaped parts, to put in a table cell as is."""

    def __init__(self, text: str) -> None:
        self.html = text


def _clip(text: str) -> tuple[str, str]:
    if len(text) <= TURN_CHARS:
        return text, ""
    return text[:TURN_CHARS], f"… ({len(text) - TURN_CHARS:,} more characters)"


def _lines(messages: Sequence[dict[str, Any]] | None) -> set[str]:
    return {line for m in messages or [] for line in (m.get("content") or "").split("\n") if line.strip()}


def mark_code(text: str, other_lines: set[str]) -> str:
    """Escaped ``text`` with code marked: lines of fenced blocks (class ``fence``), lines found
    unchanged in the other side of the pair (``same``) and `inline` spans (``inline``)."""
    text, more = _clip(text)
    out = []
    in_fence = False
    for line in text.split("\n"):
        if _FENCE.match(line):
            out.append(f'<mark class="fence">{_e(line)}</mark>')
            in_fence = not in_fence
        elif in_fence:
            out.append(f'<mark class="fence">{_e(line)}</mark>')
        elif line.strip() and line in other_lines:
            out.append(f'<mark class="same">{_e(line)}</mark>')
        else:
            pieces, last = [], 0
            for m in _INLINE.finditer(line):
                pieces.append(_e(line[last : m.start()]))
                pieces.append(f'<mark class="inline">{_e(m.group(0))}</mark>')
                last = m.end()
            pieces.append(_e(line[last:]))
            out.append("".join(pieces))
    body = "\n".join(out)
    return body + (f'<span class="more">{_e(more)}</span>' if more else "")


def _conversation(messages: Sequence[dict[str, Any]] | None, other: Sequence[dict[str, Any]] | None) -> str:
    if not messages:
        return '<p class="none">(no turns)</p>'
    other_lines = _lines(other)
    parts = []
    for m in messages[:TURNS_SHOWN]:
        parts.append(
            f'<div class="turn"><span class="role">{_e(m.get("role"))}</span>'
            f"<pre>{mark_code(m.get('content') or '', other_lines)}</pre></div>"
        )
    if len(messages) > TURNS_SHOWN:
        parts.append(f'<p class="more">… {len(messages) - TURNS_SHOWN} more turns</p>')
    return "".join(parts)


def _plain(messages: Sequence[dict[str, Any]] | None, raw: str | None = None) -> str:
    if messages:
        return _conversation(messages, None)
    text, more = _clip(raw or "")
    return f"<pre>{_e(text)}{_e(more)}</pre>" if text else '<p class="none">(nothing kept)</p>'


def _fences(messages: Sequence[dict[str, Any]] | None) -> list[str]:
    blocks, current, inside = [], [], False
    for m in messages or []:
        for line in (m.get("content") or "").split("\n"):
            if _FENCE.match(line):
                if inside:
                    blocks.append("\n".join(current))
                current, inside = [], not inside
            elif inside:
                current.append(line)
    return blocks


def _fence_check(source: Sequence[dict[str, Any]] | None, translated: Sequence[dict[str, Any]] | None) -> str:
    """This page's own look at the code: are the original's fenced blocks all in the translation?"""
    want = _fences(source)
    if not want:
        return "no fenced blocks"
    got = _fences(translated)
    same = sum(1 for block in want if block in got)
    return f"{same} of {len(want)} fenced blocks unchanged"


def _pair(
    label: str, original: Sequence[dict] | None, translated: Sequence[dict] | None, verdict: str, ok: bool
) -> str:
    return (
        f'<div class="pair"><div class="meta">{_e(label)} · verdict: '
        f'<span class="{"pass" if ok else "fail"}">{_e(verdict)}</span> · page check: '
        f"{_e(_fence_check(original, translated))}</div>"
        f'<div class="cols"><div><h4>original</h4>{_conversation(original, translated)}</div>'
        f"<div><h4>translation</h4>{_conversation(translated, original)}</div></div></div>"
    )


# --- charts (inline SVG) -----------------------------------------------------------------------


def _histogram_svg(
    series: dict[str, np.ndarray], bins: np.ndarray, *, line: float | None = None, label: str = ""
) -> str:
    width, height, pad = 720, 220, 40
    counts = {k: np.histogram(v, bins=bins)[0] for k, v in series.items() if len(v)}
    if not counts:
        return '<p class="none">(no values)</p>'
    top = max(int(c.max()) for c in counts.values()) or 1
    lo, hi = float(bins[0]), float(bins[-1])
    span = (hi - lo) or 1.0

    def x(value: float) -> float:
        return pad + (value - lo) / span * (width - 2 * pad)

    colours = ["#3b6ea8", "#d9822b", "#3d9970", "#b10dc9"]
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}">']
    parts.append(
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#444"/>'
    )
    for i, (name, c) in enumerate(counts.items()):
        colour = colours[i % len(colours)]
        for j, n in enumerate(c):
            if not n:
                continue
            h = n / top * (height - 2 * pad)
            x0, x1 = x(float(bins[j])), x(float(bins[j + 1]))
            parts.append(
                f'<rect x="{x0:.1f}" y="{height - pad - h:.1f}" width="{max(x1 - x0 - 1, 1):.1f}" '
                f'height="{h:.1f}" fill="{colour}" fill-opacity="0.6"><title>{_e(name)}: {n} rows in '
                f"[{bins[j]:g}, {bins[j + 1]:g})</title></rect>"
            )
        parts.append(
            f'<text x="{width - pad}" y="{16 + 14 * i}" text-anchor="end" fill="{colour}">'
            f"{_e(name)} ({len(series[name]):,})</text>"
        )
    parts.append(f'<text x="{pad}" y="{height - 12}">{lo:g}</text>')
    parts.append(f'<text x="{width - pad}" y="{height - 12}" text-anchor="end">{hi:g}</text>')
    parts.append(f'<text x="{pad}" y="14">{top:,} rows</text>')
    if line is not None:
        lx = x(line)
        parts.append(
            f'<line x1="{lx:.1f}" y1="{pad - 10}" x2="{lx:.1f}" y2="{height - pad}" stroke="#c00" '
            'stroke-dasharray="4 3"/>'
            f'<text x="{lx - 4:.1f}" y="{pad - 14}" fill="#c00" text-anchor="end">{_e(label)} {line:g}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _bars_svg(items: Sequence[tuple[str, int]]) -> str:
    width, row = 720, 22
    top = max((n for _, n in items), default=0) or 1
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {row * len(items) + 8}" role="img" aria-label="rows out">'
    ]
    for i, (name, n) in enumerate(items):
        w = n / top * (width - 260)
        y = 4 + i * row
        parts.append(
            f'<text x="150" y="{y + 15}" text-anchor="end">{_e(name)}</text>'
            f'<rect x="160" y="{y + 3}" width="{max(w, 1):.1f}" height="{row - 6}" fill="#3b6ea8"/>'
            f'<text x="{166 + w:.1f}" y="{y + 15}">{n:,}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


# --- sections ----------------------------------------------------------------------------------


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{_e(title)}</h2>{body}</section>'


def _funnel(funnel: list[dict]) -> str:
    bars = [(f["stage"], sum(f["out"].values())) for f in funnel]
    rows = []
    for f in funnel:
        sources = sorted(set(f["in"]) | set(f["added"]) | set(f["rejected"]) | set(f["out"]))
        total = [sum(f[k].values()) for k in ("in", "added", "rejected", "out")]
        rows.append([_Raw(f"<b>{_e(f['stage'])}</b>"), "all sources", *total])
        for source in sources:
            rows.append(["", source, *(f[k].get(source, 0) for k in ("in", "added", "rejected", "out"))])
    return (
        "<p>Rows each stage received (or read from a source), rejected and passed on, in all and per "
        "source; <code>load</code> reads the sources, <code>write</code> puts rows in the split files.</p>"
        + _bars_svg(bars)
        + _table(["stage", "source", "in", "read from a source", "rejected", "out"], rows, "funnel")
    )


def _reject_row(r: dict[str, Any]) -> str:
    where = f"{r['source_key']} ({r['source']})"
    head = f'<div class="meta">{_e(where)}: {_e(r["detail"] or "")}</div>'
    if r.get("attempted_messages"):
        return (
            f'<div class="example">{head}<div class="cols"><div><h4>as it came in</h4>'
            f"{_conversation(r['messages'], r['attempted_messages'])}</div><div><h4>what the stage made of it</h4>"
            f"{_conversation(r['attempted_messages'], r['messages'])}</div></div></div>"
        )
    return f'<div class="example">{head}{_plain(r["messages"], r["raw"])}</div>'


def _rejects(rejected: pa.Table) -> str:
    if not rejected.num_rows:
        return "<p>No row was rejected.</p>"
    stages = rejected.column("stage").to_pylist()
    reasons = rejected.column("reason").to_pylist()
    by_reason: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, key in enumerate(zip(stages, reasons, strict=True)):
        by_reason[key].append(i)
    order = sorted(by_reason, key=lambda k: (-len(by_reason[k]), k))
    summary = _table(
        ["stage", "reason", "rows"], [[s, r, len(by_reason[(s, r)])] for s, r in order], "reasons"
    )
    parts = [summary]
    for n, key in enumerate(order):
        picked = _sample(by_reason[key], EXAMPLES_PER_REASON, salt=n)
        examples = rejected.take(pa.array(picked, pa.int64())).to_pylist()
        parts.append(
            f'<details class="reason"><summary>{_e(key[0])} / {_e(key[1])}: {len(by_reason[key]):,} rows '
            f"({len(picked)} shown)</summary>{''.join(_reject_row(r) for r in examples)}</details>"
        )
    return "".join(parts)


def _translations(splits: list[_Split], rejected: pa.Table) -> str:
    translated: list[tuple[_Split, int]] = []
    for split in splits:
        if split.has("source_lang", "string") and split.has("lang", "string"):
            mask = pc.not_equal(split.table.column("source_lang"), split.table.column("lang"))
            translated += [(split, i) for i in split.where(mask)]
    picked = [translated[i] for i in _sample(range(len(translated)), TRANSLATIONS_SHOWN, salt=101)]
    parts = [
        "<p>Marked as code on this page, by its own simple rule (not the translator's segmenter): "
        '<mark class="fence">lines of ``` fenced blocks</mark>, <mark class="same">lines that appear '
        'unchanged on both sides</mark> and <mark class="inline">`inline` spans</mark>. A code line the '
        "translation changed stays unmarked on one side. The verdict is the translate stage's: a published "
        "row passed its checks (code byte-identical, target language, length ratio, no repetition loop), "
        "a rejected one names the check it failed. The page check compares the fenced blocks itself.</p>",
        f"<p>{len(translated):,} published rows were translated; {len(picked)} shown, sampled with seed {SEED}.</p>",
    ]
    for split in splits:
        mine = [i for s, i in picked if s is split]
        for i, t in zip(mine, split.turns(mine), strict=True):
            label = f"{split.name}: {split.value('source_key', i)} ({split.value('source', i)})"
            parts.append(_pair(label, t["source_messages"], t["messages"], "passed: published", True))
    if "attempted_messages" in rejected.column_names and rejected.num_rows:
        failed = pc.indices_nonzero(pc.is_valid(rejected.column("attempted_messages"))).to_pylist()
        shown = _sample(failed, REJECTED_TRANSLATIONS_SHOWN, salt=102)
        parts.append(
            f"<h3>Rejected translations</h3><p>{len(failed):,} translations failed a check; "
            f"{len(shown)} shown, sampled with seed {SEED}.</p>"
        )
        for r in rejected.take(pa.array(shown, pa.int64())).to_pylist():
            verdict = f"rejected: {r['reason']}: {r['detail']}"
            label = f"{r['source_key']} ({r['source']})"
            parts.append(_pair(label, r["messages"], r["attempted_messages"], verdict, False))
    return "".join(parts)


def _near_duplicates(splits: list[_Split], rejected: pa.Table) -> str:
    stages = rejected.column("stage").to_pylist()
    dup_of = rejected.column("duplicate_of").to_pylist()
    members: dict[str, list[int]] = defaultdict(list)
    for i, (stage, keeper) in enumerate(zip(stages, dup_of, strict=True)):
        if stage.split("#")[0] == "near_dedup" and keeper:
            members[keeper].append(i)
    marked: dict[str, list[tuple[_Split, int]]] = defaultdict(list)
    for split in splits:
        if split.has("dup_cluster", "string"):
            mask = pc.not_equal(split.table.column("dup_cluster"), split.table.column("row_id"))
            for i in split.where(mask):
                marked[split.value("dup_cluster", i)].append((split, i))
    if not members and not marked:
        return "<p>No near-duplicate was dropped or marked.</p>"
    sizes = Counter({k: len(v) for k, v in members.items()}) + Counter({k: len(v) for k, v in marked.items()})
    top = sorted(sizes, key=lambda k: (-sizes[k], k))[:CLUSTERS_SHOWN]
    where: dict[str, tuple[_Split, int]] = {}
    wanted = set(top)
    for split in splits:
        ids = split.table.column("row_id")
        for i in split.where(pc.is_in(ids, value_set=pa.array(sorted(wanted), pa.string()))):
            where[ids[i].as_py()] = (split, i)
    rejected_ids = rejected.column("row_id").to_pylist()
    rejected_at = {rid: i for i, rid in enumerate(rejected_ids) if rid in wanted}
    parts = [
        f"<p>{len(sizes):,} clusters had rows dropped (or marked) as near duplicates of a kept row; the "
        f"{len(top)} largest shown, up to {MEMBERS_SHOWN} dropped rows each.</p>"
    ]
    for keeper in top:
        if keeper in where:
            split, i = where[keeper]
            kept_html = _conversation(split.turns([i])[0]["messages"], None)
            kept_label = f"kept, published in {split.name}"
        elif keeper in rejected_at:
            r = rejected.slice(rejected_at[keeper], 1).to_pylist()[0]
            kept_html = _plain(r["messages"], r["raw"])
            kept_label = f"kept by near-dedup, later rejected by {r['stage']}: {r['reason']}"
        else:
            kept_html, kept_label = '<p class="none">(not found)</p>', "kept"
        dropped = members.get(keeper, [])[:MEMBERS_SHOWN]
        rows = rejected.take(pa.array(dropped, pa.int64())).to_pylist() if dropped else []
        items = [
            f'<div><h4>dropped: {_e(r["source_key"])}</h4><div class="meta">{_e(r["detail"])}</div>'
            f"{_plain(r['messages'], r['raw'])}</div>"
            for r in rows
        ]
        for split, i in marked.get(keeper, [])[: MEMBERS_SHOWN - len(items)]:
            items.append(
                f"<div><h4>marked: {_e(split.value('source_key', i))}</h4>"
                f"{_conversation(split.turns([i])[0]['messages'], None)}</div>"
            )
        parts.append(
            f'<details class="cluster"><summary>cluster {_e(keeper[:12])}: 1 kept, {sizes[keeper]:,} '
            f'dropped or marked</summary><div class="cols"><div><h4>{_e(kept_label)}</h4>{kept_html}</div>'
            f"{''.join(items)}</div></details>"
        )
    return "".join(parts)


def _decontamination(rejected: pa.Table) -> str:
    stages = rejected.column("stage").to_pylist()
    hits = [i for i, s in enumerate(stages) if s.split("#")[0] == "decontaminate"]
    if not hits:
        return "<p>No row was removed for overlapping an evaluation item.</p>"
    shown = _sample(hits, HITS_SHOWN, salt=103)
    rows = []
    for r in rejected.take(pa.array(shown, pa.int64())).to_pylist():
        found = _HIT.match(r["detail"] or "")
        user = next((m["content"] for m in r["messages"] or [] if m["role"] == "user"), r["raw"] or "")
        text, more = _clip(user)
        cell = _Raw(f'<div class="meta">{_e(r["source_key"])}</div><pre>{_e(text[:400])}{_e(more)}</pre>')
        if found:
            rows.append([cell, f"{found['set']}: {found['item']}", found["method"], found["score"]])
        else:
            rows.append([cell, "", r["reason"], r["detail"]])
    return (
        f"<p>{len(hits):,} rows removed for overlapping an evaluation item; {len(shown)} shown"
        + (f", sampled with seed {SEED}" if len(shown) < len(hits) else "")
        + ".</p>"
        + _table(["row (first user turn)", "eval set: item", "method", "score"], rows, "hits")
    )


def _max_tokens(manifest: dict[str, Any]) -> int | None:
    for stage in manifest["recipe"].get("stages", []):
        if stage.get("type") == "format" and stage.get("max_tokens") is not None:
            return int(stage["max_tokens"])
    return None


def _tokens(splits: list[_Split], rejected: pa.Table, manifest: dict[str, Any]) -> str:
    series = {
        s.name: s.table.column("num_tokens").to_numpy(zero_copy_only=False).astype(np.int64)
        for s in splits
        if "num_tokens" in s.table.column_names
    }
    if not series:
        return "<p>No token counts in this version (no <code>format</code> stage with a tokenizer).</p>"
    over = []
    for detail, reason in zip(
        rejected.column("detail").to_pylist(), rejected.column("reason").to_pylist(), strict=True
    ):
        if reason == "too_many_tokens" and (m := re.match(r"(\d+) tokens", detail or "")):
            over.append(int(m.group(1)))
    if over:
        series["rejected: over max_tokens"] = np.asarray(over, dtype=np.int64)
    limit = _max_tokens(manifest)
    upper = max([int(v.max()) for v in series.values() if len(v)] + [limit or 0]) + 1
    bins = np.linspace(0, upper, 41)
    stats = [
        [name, len(v), int(v.min()), int(np.median(v)), int(np.percentile(v, 95)), int(v.max())]
        for name, v in series.items()
        if len(v)
    ]
    note = (
        f"<p><code>max_tokens</code> is {limit:,}: {len(over):,} rows over it were rejected.</p>"
        if limit is not None
        else "<p>No <code>max_tokens</code> limit in the recipe.</p>"
    )
    return (
        note
        + _histogram_svg(series, bins, line=limit, label="max_tokens")
        + _table(["rows", "count", "min", "median", "p95", "max"], stats, "tokens")
    )


def _signal(split: _Split, name: str) -> np.ndarray:
    """One member of ``mt_quality`` as floats, NaN where the row or the value is null (or absent)."""
    kind = split.table.schema.field("mt_quality").type
    if kind.get_field_index(name) < 0:
        return np.full(split.rows, np.nan)
    column = pc.struct_field(split.table.column("mt_quality"), name)
    return pc.fill_null(pc.cast(column, pa.float64()), float("nan")).to_numpy(zero_copy_only=False)


def _quality(splits: list[_Split]) -> str:
    have = [s for s in splits if s.has("mt_quality", "struct")]
    if not have:
        return "<p>No <code>mt_quality</code> column in this version: no translation quality was scored.</p>"
    carried = sum(len(s.table.column("mt_quality")) - s.table.column("mt_quality").null_count for s in have)
    signals = {name: [_signal(s, name) for s in have] for name in ("round_trip_chrf", *_CHEAP_SIGNALS)}
    chrf = np.concatenate(signals["round_trip_chrf"])
    scored = chrf[~np.isnan(chrf)]
    parts = [
        f"<p>{int(carried):,} published rows carry <code>mt_quality</code>; {len(scored):,} have a round-trip "
        "chrF (their prose translated back and compared with the original; 0 to 100). The cheap signals "
        "hold for every scored row: an untranslated row scores a perfect round trip, so read chrF beside "
        "the target-script share and the untranslated share.</p>"
    ]
    if len(scored):
        parts.append(_histogram_svg({"round-trip chrF": scored}, np.linspace(0, 100, 41), label="chrF"))
    rows = []
    for name, per_split in signals.items():
        values = np.concatenate(per_split)
        values = values[~np.isnan(values)]
        if len(values):
            rows.append(
                [name, len(values), float(values.min()), float(np.median(values)), float(values.max())]
            )
    parts.append(_table(["signal", "rows", "min", "median", "max"], rows, "signals"))

    def lowest(name: str) -> list[tuple[_Split, int]]:
        """The rows with the lowest value of one signal, by split order then row order on ties."""
        found: list[tuple[float, int, int]] = []
        for n, values in enumerate(signals[name]):
            valid = np.flatnonzero(~np.isnan(values))
            order = valid[np.lexsort((valid, values[valid]))][:WORST_SHOWN]
            found += [(float(values[i]), n, int(i)) for i in order]
        return [(have[n], i) for _, n, i in sorted(found)[:WORST_SHOWN]]

    for title, picked in (
        ("round-trip chrF", lowest("round_trip_chrf")),
        ("target-script share", lowest("target_script_share")),
    ):
        if not picked:
            continue
        parts.append(f"<h3>Worst {len(picked)} rows by {_e(title)}</h3>")
        for split, i in picked:
            t = split.turns([i])[0]
            q = split.value("mt_quality", i) or {}
            shown = ", ".join(
                f"{k} {q[k]:.3f}" for k in ("round_trip_chrf", *_CHEAP_SIGNALS) if q.get(k) is not None
            )
            label = f"{split.name}: {split.value('source_key', i)} · {shown}"
            parts.append(_pair(label, t["source_messages"], t["messages"], "published", True))
    return "".join(parts)


def _execution(manifest: dict[str, Any]) -> str:
    execution = manifest.get("execution") or {}
    flat = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat.append([prefix, str(value)])

    walk("", execution)
    seconds = [[s["stage"], float(s.get("seconds", 0.0))] for s in manifest["stages"]]
    return (
        "<p>How this build ran: the only part of the page that differs between executors.</p>"
        + _table(["setting", "value"], flat, "execution")
        + _table(["stage", "seconds"], seconds, "seconds")
    )


_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 16px;color:#222;background:#fff}
h1{font-size:22px;margin:18px 0 4px}h2{border-bottom:2px solid #3b6ea8;padding-bottom:2px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:2px 8px;vertical-align:top;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#eef2f7}
pre{white-space:pre-wrap;word-break:break-word;margin:2px 0;font:12px/1.35 ui-monospace,monospace;background:#fafafa;padding:4px}
mark.fence{background:#dcefdc}mark.same{background:#dde7f7}mark.inline{background:#f7ecd0}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:10px}.pair,.example,details{border:1px solid #ddd;margin:8px 0;padding:6px}
.meta{color:#555;font-size:12px}.role{font-weight:bold;font-size:12px;color:#3b6ea8}.pass{color:#17692a}.fail{color:#b00}
.none,.more{color:#888}svg.chart{width:100%;max-width:720px;height:auto;font-size:12px;display:block}
nav a{margin-right:10px}
"""


def render_report(folder: Path, manifest: dict[str, Any], rejected: pa.Table, funnel: list[dict]) -> str:
    """The page of the version in ``folder`` (split files written), as one HTML string."""
    splits = [_Split(name, folder / meta["file"]) for name, meta in manifest["splits"].items()]
    published = sum(s.rows for s in splits)
    sections = [
        ("funnel", "Funnel: rows in and out of each stage", _funnel(funnel)),
        ("rejects", "Rejected rows by reason", _rejects(rejected)),
        ("translations", "Translations beside their originals", _translations(splits, rejected)),
        (
            "near-duplicates",
            "Near-duplicate clusters: kept against dropped",
            _near_duplicates(splits, rejected),
        ),
        ("decontamination", "Decontamination hits", _decontamination(rejected)),
        ("tokens", "Token lengths against max_tokens", _tokens(splits, rejected, manifest)),
        ("quality", "Translation quality (mt_quality)", _quality(splits)),
        ("execution", "How the build ran", _execution(manifest)),
    ]
    title = f"{manifest['name']} {manifest['version']}"
    nav = "".join(f'<a href="#{sid}">{_e(sid)}</a>' for sid, _, _ in sections)
    head = (
        f"<h1>{_e(title)}</h1>"
        f'<p class="meta">content hash <code>{_e(manifest["content_hash"])}</code> · built by '
        f"{_e(manifest['tool']['name'])} {_e(manifest['tool']['version'])} · recipe sha256 "
        f"<code>{_e(manifest['recipe_sha256'][:16])}</code>…</p>"
        f'<p id="summary">{published:,} rows published '
        f"({', '.join(f'{s.name} {s.rows:,}' for s in splits)}), {rejected.num_rows:,} rejected. Examples are "
        f"sampled with the fixed seed {SEED}; each section says how many it shows of how many.</p>"
        f"<nav>{nav}</nav>"
    )
    body = "".join(_section(sid, t, b) for sid, t, b in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        # Nothing may be fetched or run: a row that smuggled markup past escaping still could not call out.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        'img-src data:">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)} report</title><style>{_STYLE}</style></head>"
        f"<body>{head}{body}</body></html>\n"
    )


def write_report_page(folder: Path, manifest: dict[str, Any], rejected: pa.Table, funnel: list[dict]) -> Path:
    path = folder / REPORT
    path.write_text(render_report(folder, manifest, rejected, funnel), encoding="utf-8")
    return path


def report_path(info: Any) -> Path:
    """The report page of a published version (a ``VersionInfo``), checked against its manifest."""
    from dataset_builder.errors import UserError, VerificationError
    from dataset_builder.hashing import file_sha256
    from dataset_builder.registry.names import inside

    listed = info.manifest.get("files", {}).get(REPORT)
    if not listed:
        raise UserError(
            f"{info.ref}: has no {REPORT} (published by a dataset-builder older than report pages); "
            f"`dataset-builder show {info.ref}` prints its counts"
        )
    path = inside(info.path, REPORT, info.ref)
    if not path.is_file() or file_sha256(path) != listed.get("sha256"):
        raise VerificationError(
            f"{info.ref}: {REPORT} is missing or does not match its sha256 in the manifest; "
            f"run `dataset-builder verify {info.ref}`"
        )
    return path

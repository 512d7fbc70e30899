"""The evaluators' one report writer (perplexity and benchmark reports both go through it)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from trainer.evaluation.report import Chart, write_report


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_writes_json_markdown_and_chart_with_missing_values(tmp_path: Path) -> None:
    report = {"results": {"base": {"a": 0.5}, "adapter": {"a": None}}, "text": "Привет"}
    chart = Chart(
        groups=["a", "b", "c", "d", "e"],
        bars={"base": [50.0, 1.0, None, 2.0, 3.0], "adapter": [None, None, None, None, 4.0]},
        ylabel="percent",
        title="T",
        lines={"paper: x": 61.95},
    )
    files = write_report(tmp_path / "out", "bench", report, "Bench", "Some notes.", "| a |\n|---|", chart)
    assert [f.name for f in files] == ["bench.json", "bench.md", "bench.png"]
    assert json.loads(files[0].read_text(encoding="utf-8")) == report
    assert "Привет" in files[0].read_text(encoding="utf-8")  # kept readable, not \u-escaped
    assert files[1].read_text(encoding="utf-8") == "# Bench\n\nSome notes.\n\n| a |\n|---|\n"
    # 1.5 inches per group, at least 6, by 4 inches, at 100 dpi
    assert _png_size(files[2]) == (750, 400)
    assert b"Software" not in files[2].read_bytes()  # no library version stamped into the image

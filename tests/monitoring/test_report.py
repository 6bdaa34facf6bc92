"""Drift reports: self-contained HTML (Plotly inlined, no CDN), the same content as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq

from modelcycle.datasets import make_credit
from modelcycle.monitoring import chart_data, compute_drift, render_html, write_report


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.script_srcs: list[str] = []
        self.link_hrefs: list[str] = []
        self.text: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self.scripts += 1
            if values.get("src"):
                self.script_srcs.append(str(values["src"]))
        if tag == "link" and values.get("href"):
            self.link_hrefs.append(str(values["href"]))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_report_is_self_contained_and_names_every_column(tmp_path: Path) -> None:
    ref, cur = make_credit(3000, seed=1), make_credit(2000, seed=2, drift=0.8)
    report = compute_drift(ref, cur)
    charts = chart_data(ref, cur, report)
    assert [c.name for c in charts] == [c.name for c in report.columns]
    html = render_html(report, charts)
    parser = _Collect()
    parser.feed(html)
    parser.close()
    text = " ".join(parser.text)
    for col in report.columns:
        assert col.name in text
    assert not [s for s in parser.script_srcs if s.startswith(("http://", "https://", "//"))]
    assert not [h for h in parser.link_hrefs if h.startswith(("http://", "https://", "//"))]
    assert "Plotly.newPlot" in html
    assert "plotly.js" in html.lower()
    assert len(html) > 3_000_000
    assert "DATA DRIFT" in html
    # Drifted columns come first in the table.
    drifted = [c.name for c in report.columns if c.drifted]
    first = text.index("Columns, most drifted first")
    positions = [text.index(name, first) for name in drifted]
    quiet = [c.name for c in report.columns if not c.drifted]
    assert max(positions) < min(text.index(name, first) for name in quiet)


def test_chart_data_shares_bins_and_groups_rare_categories() -> None:
    ref, cur = make_credit(2000, seed=3), make_credit(1500, seed=4)
    report = compute_drift(ref, cur)
    charts = {c.name: c for c in chart_data(ref, cur, report, top=3)}
    income = charts["income"]
    assert income.kind == "histogram"
    assert len(income.x) == 30
    assert abs(sum(income.reference) - 1) < 1e-9
    assert abs(sum(income.current) - 1) < 1e-9
    purpose = charts["purpose"]
    assert purpose.kind == "bar"
    assert purpose.x[-1] == "(other)"
    assert len(purpose.x) == 4


def test_json_report_and_cli_report_option(tmp_path: Path) -> None:
    ref, cur = make_credit(1500, seed=5), make_credit(1500, seed=6, drift=1.0)
    pq.write_table(ref, tmp_path / "ref.parquet")
    pq.write_table(cur, tmp_path / "cur.parquet")
    report = compute_drift(ref, cur)
    write_report(tmp_path / "r.json", report, ref, cur)
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["dataset_drift"] is True
    assert len(data["charts"]) == len(report.columns)
    out = tmp_path / "cli.html"
    proc = subprocess.run(
        [sys.executable, "-m", "modelcycle", "monitor", "drift",
         "-r", str(tmp_path / "ref.parquet"), "-c", str(tmp_path / "cur.parquet"),
         "--report", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()
    assert "debt_ratio" in out.read_text()

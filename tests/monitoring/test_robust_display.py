"""Issue 13 item 6: in robust mode every place that shows a verdict shows the figures it came
from (the robust test, its adjusted p-value, the effect with its interval), not the default
test's distance."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from _cli import run_cli


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.headers: list[str] = []
        self._in_th = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_th = tag == "th"

    def handle_endtag(self, tag: str) -> None:
        self._in_th = False

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        if self._in_th:
            self.headers.append(data.strip())


def _files(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(7)
    n = 600  # <= 1,000 reference rows: the default tests are ks and chi-square/z p-values
    ref = pa.table(
        {
            "shifted": rng.normal(0, 1, n),
            "steady": rng.normal(0, 1, n),
            "colour": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    cur = pa.table(
        {
            "shifted": rng.normal(0.8, 1, n),
            "steady": rng.normal(0, 1, n),
            "colour": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    paths = tmp_path / "ref.csv", tmp_path / "cur.csv"
    pcsv.write_csv(ref, paths[0])
    pcsv.write_csv(cur, paths[1])
    return paths


def _row(stdout: str, column: str) -> str:
    return next(line for line in stdout.splitlines() if line.strip("│┃ ").startswith(column))


def test_cli_table_json_and_html_show_the_robust_figures(tmp_path: Path) -> None:
    ref, cur = _files(tmp_path)
    args = ("monitor", "drift", "-r", str(ref), "-c", str(cur), "--robust")
    data = json.loads(run_cli(*args, "--json", cwd=tmp_path, check=True).stdout)
    cols: dict[str, Any] = {c["name"]: c for c in data["columns"]}
    shifted = cols["shifted"]
    assert shifted["drifted"] is True
    assert not cols["steady"]["drifted"]
    # --json: what decided the verdict, and the figures it used.
    assert shifted["decided_by"] == "robust"
    r = shifted["robust"]
    assert (r["test"], r["effect"], r["alpha"]) == ("ks", "wasserstein", 0.05)
    low, high = r["effect_interval"]
    assert r["p_adjusted"] < 0.05 <= 0.1 <= low <= r["effect_size"] <= high
    assert "adjusted p" in shifted["explanation"]
    assert f"[{low:.3g}, {high:.3g}]" in shifted["explanation"]
    assert cols["colour"]["robust"]["test"] == "chi2_homogeneity"

    # The table: the robust test, adjusted p, effect and interval; not the default test's figure.
    table = run_cli(*args, cwd=tmp_path, check=True).stdout
    row = _row(table, "shifted")
    assert "ks" in row
    assert f"{r['p_adjusted']:.3g}" in row
    assert f"wasserstein {r['effect_size']:.4g}" in row
    assert f"[{low:.4g}, {high:.4g}]" in row
    assert "DRIFT" in row
    assert f"{shifted['statistic']:.4g}" not in row  # the default ks statistic
    assert "adjusted p" in table
    assert "robust rule" in table

    # The HTML report: the same figures in the table and on the column's card.
    out = tmp_path / "robust.html"
    run_cli(*args, "--report", str(out), cwd=tmp_path, check=True)
    parser = _Text()
    parser.feed(out.read_text(encoding="utf-8"))
    text = " ".join(parser.parts)
    assert {"adjusted p", "effect size", "90% interval", "effect threshold"} <= set(parser.headers)
    assert "statistic" not in parser.headers
    assert f"[{low:.4g}, {high:.4g}]" in text
    assert f"{r['p_adjusted']:.3g}" in text
    assert shifted["explanation"] in text  # the card's sentence
    assert "ks + wasserstein interval" in text  # the methods table names the robust rule
    assert "Benjamini-Hochberg" in text


def test_history_shows_the_robust_figures(cli: Any, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ref, cur = _files(tmp_path)
    saved = json.loads(
        cli("monitor", "drift", "-r", str(ref), "-c", str(cur), "--robust", "--save", "--json",
            check=True).stdout
    )  # fmt: skip
    shifted = next(c for c in saved["columns"] if c["name"] == "shifted")
    history = json.loads(cli("monitor", "history", "--json", check=True).stdout)
    assert history[-1]["robust"] is True
    detail = next(d for d in history[-1]["drifted_details"] if d["name"] == "shifted")
    assert detail["decided_by"] == "robust"
    assert detail["explanation"] == shifted["explanation"]
    assert detail["robust"]["p_adjusted"] == shifted["robust"]["p_adjusted"]
    table = cli("monitor", "history", check=True).stdout
    assert "(robust)" in table
    low, high = shifted["robust"]["effect_interval"]
    assert f"[{low:.3g}, {high:.3g}]" in table

"""CSV input with bad rows through the real CLI: a clear error naming the line, or
``--skip-bad-rows`` scoring the rest and listing the bad rows with the reason (SQLite)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from _batch_helpers import features, input_table, register_credit
from sqlalchemy import func, select

from _cli import run_cli
from modelcycle import Workspace
from modelcycle.store import tables

ROWS = 3_000
BAD_VALUE_ROW, SHORT_ROW = 1_234, 2_500  # data rows (0-based); file line = row + 2


@pytest.fixture
def ws(fresh_ws: Workspace) -> Workspace:
    return fresh_ws


def _bad_csv(path: Path) -> None:
    """The input as CSV, with ``income`` not a number in one row and a field missing in another."""
    pa_csv.write_csv(input_table(ROWS), path)
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    rows[BAD_VALUE_ROW + 1][rows[0].index("income")] = "12k"
    rows[SHORT_ROW + 1].pop()
    with open(path, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def _jobs(ws: Workspace) -> int:
    with ws.metadata.read() as conn:
        return int(conn.execute(select(func.count()).select_from(tables.batch_jobs)).scalar() or 0)


def test_a_bad_csv_row_is_named_by_its_line_and_nothing_is_written(
    ws: Workspace, tmp_path: Path
) -> None:
    register_credit(ws)
    _bad_csv(tmp_path / "in.csv")
    args = ["score", "credit/1", "--input", str(tmp_path / "in.csv"), "--chunk-rows", "500"]
    proc = run_cli(*args, "--output", str(tmp_path / "out"), cwd=ws.root)
    assert proc.returncode == 2, proc.stdout + proc.stderr  # InvalidInput
    message = proc.stdout + proc.stderr
    assert f"in.csv, line {BAD_VALUE_ROW + 2}: column income: '12k' is not a double" in message
    assert "--skip-bad-rows" in message
    assert not (tmp_path / "out").exists()  # the first chunks are good: refused before a part
    assert _jobs(ws) == 0


def test_skip_bad_rows_scores_the_rest_and_lists_the_rejects(ws: Workspace, tmp_path: Path) -> None:
    model = register_credit(ws)
    _bad_csv(tmp_path / "in.csv")
    proc = run_cli(
        "score",
        "credit/1",
        "--input",
        str(tmp_path / "in.csv"),
        "--output",
        str(tmp_path / "out"),
        "--passthrough",
        "id",
        "--chunk-rows",
        "500",
        "--skip-bad-rows",
        cwd=ws.root,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 bad rows left out" in proc.stdout
    with open(tmp_path / "out" / "_rejects.csv", newline="") as fh:
        rejects = list(csv.DictReader(fh))
    assert rejects == [
        {"line": str(BAD_VALUE_ROW + 2), "reason": "column income: '12k' is not a double"},
        {"line": str(SHORT_ROW + 2), "reason": "expected 13 fields, got 12"},
    ]
    out = pq.read_table(tmp_path / "out")  # the rejects file is not read as a part
    good = [i for i in range(ROWS) if i not in (BAD_VALUE_ROW, SHORT_ROW)]
    assert out.column("id").to_pylist() == good
    expected = model.predict(features(input_table(ROWS).take(good)))
    np.testing.assert_array_equal(out.column("prediction").to_numpy(), expected)
    job = ws.batch.list()[0]
    assert (job.status, job.rows_in, job.rows_out) == ("succeeded", ROWS - 2, ROWS - 2)
    finished = [e for e in ws.audit.events() if e.action == "batch.finished"]
    assert finished[-1].payload["rejected"] == 2

"""``modelcycle score`` with an input that lacks model columns: one clear error, every format.

The defect: a CSV input lacking a column printed a pyarrow traceback (``ArrowKeyError ...
include_columns``) while Parquet gave the signature error. Every format must give the same
one-line error naming the missing column(s) and the input, exit code 2, and write nothing.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq
import pytest
from _batch_helpers import input_table, register_credit

from _cli import run_cli
from modelcycle import Workspace

MISSING = ["income", "age"]


@pytest.fixture
def ws(fresh_ws: Workspace) -> Workspace:
    return fresh_ws


def _write_jsonl(table: object, path: Path) -> None:
    import json

    rows = table.to_pylist()  # type: ignore[attr-defined]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_missing_columns_are_named_for_every_input_format(ws: Workspace, tmp_path: Path) -> None:
    register_credit(ws)
    table = input_table(300).drop(MISSING)
    pa_csv.write_csv(table, tmp_path / "in.csv")
    pq.write_table(table, tmp_path / "in.parquet")
    _write_jsonl(table, tmp_path / "in.jsonl")
    (tmp_path / "parts").mkdir()
    pq.write_table(table.slice(0, 150), tmp_path / "parts" / "a.parquet")
    pq.write_table(table.slice(150), tmp_path / "parts" / "b.parquet")
    ws.datasets.add("lacking", table)
    # The JSON lines file is readable as such (the check is not about the reader).
    assert pa_json.read_json(tmp_path / "in.jsonl").num_rows == 300

    inputs = {
        "in.csv": str(tmp_path / "in.csv"),
        "in.parquet": str(tmp_path / "in.parquet"),
        "in.jsonl": str(tmp_path / "in.jsonl"),
        "parts": str(tmp_path / "parts"),
        "lacking@1": "data:lacking@1",
    }
    for shown, given in inputs.items():
        out = tmp_path / f"out-{shown}"
        proc = run_cli("score", "credit/1", "--input", given, "--output", str(out), cwd=ws.root)
        message = proc.stdout + proc.stderr
        assert proc.returncode == 2, message  # InvalidInput
        assert "Traceback" not in message, message
        assert "Arrow" not in message, message
        assert "does not match the model signature" in message, message
        for column in MISSING:
            assert f"column {column!r}: missing" in message, message
        assert shown in message, message
        assert not out.exists()
    assert ws.batch.list() == []


def test_json_lines_input_scores_like_parquet(ws: Workspace, tmp_path: Path) -> None:
    register_credit(ws)
    table = input_table(500)
    pq.write_table(table, tmp_path / "in.parquet")
    _write_jsonl(table, tmp_path / "in.ndjson")
    outs = []
    for name in ("in.parquet", "in.ndjson"):
        job = ws.batch.score(
            "credit/1", tmp_path / name, tmp_path / f"out-{name}", workers=1, passthrough=["id"]
        )
        assert (job.status, job.rows_out) == ("succeeded", 500)
        outs.append(pq.read_table(tmp_path / f"out-{name}"))
    assert outs[0].equals(outs[1])

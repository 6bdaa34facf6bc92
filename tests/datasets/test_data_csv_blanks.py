"""Blank CSV fields are nulls in every column type, as the same data stored as Parquet has.

The defect: a blank field in a CSV text column was read as the empty string, a category of its
own, while the Parquet copy of the same data held nulls; the two copies then trained models
with different signatures (one refusing the nulls the other accepts).
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from _cli import run_cli
from modelcycle import Workspace
from modelcycle.registry import Signature

ROWS = 80


def _table() -> pa.Table:
    """Survey-like columns: numeric codes, text, a float; every feature with gaps."""
    cities = ["Leeds", "York", "Hull", "Bath"]
    return pa.table(
        {
            "age": pa.array([None if i % 9 == 4 else 20 + i % 50 for i in range(ROWS)], pa.int64()),
            "city": pa.array([None if i % 7 == 3 else cities[i % 4] for i in range(ROWS)]),
            "income": pa.array(
                [None if i % 11 == 5 else 1000.5 + 37.25 * i for i in range(ROWS)], pa.float64()
            ),
            "bought": pa.array([int((i * 7) % 5 < 2) for i in range(ROWS)], pa.int64()),
        }
    )


def _write_csv(table: pa.Table, path: Path) -> None:
    """A CSV as spreadsheets and pandas write it: a missing value is an empty field."""
    lines = [",".join(table.column_names)]
    for row in table.to_pylist():
        lines.append(",".join("" if v is None else str(v) for v in row.values()))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_blank_csv_fields_read_as_nulls_like_parquet(sqlite_ws: Workspace, tmp_path: Path) -> None:
    table = _table()
    _write_csv(table, tmp_path / "survey.csv")
    pq.write_table(table, tmp_path / "survey.parquet")
    ws = sqlite_ws

    from_csv = ws.datasets.add("survey_csv", tmp_path / "survey.csv")
    from_parquet = ws.datasets.add("survey_parquet", tmp_path / "survey.parquet")

    city = next(c for c in from_csv.schema if c["name"] == "city")
    assert city == {"name": "city", "type": "string", "nullable": True}
    assert from_csv.schema == from_parquet.schema
    nulls = {name: p["nulls"] for name, p in from_csv.profile["columns"].items()}
    assert nulls == {name: p["nulls"] for name, p in from_parquet.profile["columns"].items()}
    assert nulls["city"] == table.column("city").null_count > 0
    assert "" not in [t["value"] for t in from_csv.profile["columns"]["city"]["top"]]
    # The content identity does not depend on the format: the same rows, the same hash.
    assert from_csv.sha256 == from_parquet.sha256

    shown = run_cli("data", "show", "survey_csv@1", cwd=ws.root, check=True).stdout
    assert "missing" in shown
    city_line = next(line for line in shown.splitlines() if re.search(r"\bcity\b", line))
    assert re.search(rf"\b{nulls['city']}\b", city_line), shown

    signatures = []
    for name in ("survey_csv", "survey_parquet"):
        run = ws.pipelines.train(name, "bought", model="logreg", progress=False)
        signatures.append(Signature.from_dict(ws.registry.get(run.models[0]).signature))
    assert signatures[0].inputs == signatures[1].inputs
    assert {c.name: c.nullable for c in signatures[0].inputs}["city"] is True

    # Batch scoring reads the CSV as ingest does: the blanks reach the model (and the output's
    # passthrough copy) as nulls, exactly as from the Parquet copy.
    outputs = []
    for source in ("survey.csv", "survey.parquet"):
        out = tmp_path / f"scored-{source}"
        ws.batch.score(
            run.models[0], tmp_path / source, out, workers=1, passthrough=["city"], proba=True
        )
        outputs.append(pq.read_table(out))
    assert outputs[0].column("city").null_count == table.column("city").null_count
    assert outputs[0].equals(outputs[1])

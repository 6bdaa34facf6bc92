"""Batch scoring on the local engine: output, checks, inputs, jobs and the prediction log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from _batch_helpers import features, input_table, register_credit, write_input
from sqlalchemy import func, select

from modelcycle import Workspace
from modelcycle.errors import Conflict, InvalidInput
from modelcycle.registry import SignatureMismatch
from modelcycle.store import tables


def test_output_equals_predict_in_order_with_passthrough_and_proba(
    workspace: Workspace, tmp_path: Path
) -> None:
    model = register_credit(workspace)
    table = write_input(tmp_path / "in.parquet", 20_000)
    job = workspace.batch.score(
        "credit@champion",
        tmp_path / "in.parquet",
        tmp_path / "out",
        workers=2,
        chunk_rows=3_000,
        passthrough=["id"],
        proba=True,
    )
    assert (job.status, job.rows_in, job.rows_out, job.chunks_total) == (
        "succeeded",
        20_000,
        20_000,
        7,
    )
    parts = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert parts == [f"part-{i:05d}.parquet" for i in range(7)]
    out = pq.read_table(tmp_path / "out")
    assert out.column_names == ["id", "prediction", "proba_0", "proba_1", "model_version"]
    x = features(table)
    assert out.column("id").to_pylist() == list(range(20_000))
    np.testing.assert_array_equal(out.column("prediction").to_numpy(), model.predict(x))
    proba = model.predict_proba(x)
    np.testing.assert_allclose(out.column("proba_0").to_numpy(), proba[:, 0])
    np.testing.assert_allclose(out.column("proba_1").to_numpy(), proba[:, 1])
    assert set(out.column("model_version").to_pylist()) == {1}
    actions = [e.action for e in workspace.audit.events() if e.subject == f"batch:{job.id}"]
    assert actions == ["batch.started", "batch.finished"]
    again = workspace.batch.get(job.id[:8])
    assert len(again.chunks) == 7
    assert sum(c.rows for c in again.chunks) == 20_000
    assert [j.id for j in workspace.batch.list()] == [job.id]


def test_schema_mismatch_reports_every_problem_and_writes_nothing(
    workspace: Workspace, tmp_path: Path
) -> None:
    register_credit(workspace)
    table = input_table(500)
    bad = table.drop(["age", "income"]).set_column(
        table.schema.get_field_index("employment") - 2,
        "employment",
        pa.array(np.arange(500, dtype=np.float64)),
    )
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(SignatureMismatch) as info:
        workspace.batch.score(
            "credit/1", tmp_path / "bad.parquet", tmp_path / "out", passthrough=["nope"]
        )
    problems = {(p.column, p.kind) for p in info.value.problems}
    assert {
        ("age", "missing"),
        ("income", "missing"),
        ("employment", "type"),
        ("nope", "missing"),
    } <= problems
    assert not (tmp_path / "out").exists()
    with workspace.metadata.read() as conn:
        assert conn.execute(select(func.count()).select_from(tables.batch_jobs)).scalar() == 0


def test_csv_parquet_folder_and_data_set_inputs(workspace: Workspace, tmp_path: Path) -> None:
    model = register_credit(workspace)
    table = input_table(6_000)
    expected = model.predict(features(table))
    pa_csv.write_csv(table, tmp_path / "in.csv")
    (tmp_path / "parts").mkdir()
    for i, start in enumerate(range(0, 6_000, 2_500)):
        pq.write_table(table.slice(start, 2_500), tmp_path / "parts" / f"p{i}.parquet")
    workspace.datasets.add("scoring-input", table)
    for name, source in [
        ("csv", str(tmp_path / "in.csv")),
        ("folder", str(tmp_path / "parts")),
        ("glob", str(tmp_path / "parts" / "*.parquet")),
        ("data", "data:scoring-input@1"),
    ]:
        job = workspace.batch.score(
            "credit/1", source, tmp_path / name, workers=1, chunk_rows=1_000, passthrough=["id"]
        )
        out = pq.read_table(tmp_path / name)
        assert job.rows_out == 6_000, name
        assert out.column("id").to_pylist() == list(range(6_000)), name
        np.testing.assert_array_equal(out.column("prediction").to_numpy(), expected, name)
    assert workspace.batch.get(job.id).input == "data:scoring-input@1"


def test_refusals_leave_nothing(workspace: Workspace, tmp_path: Path) -> None:
    register_credit(workspace)
    write_input(tmp_path / "in.parquet", 100)
    pq.write_table(input_table(100).slice(0, 0), tmp_path / "empty.parquet")
    with pytest.raises(InvalidInput, match="no rows"):
        workspace.batch.score("credit/1", tmp_path / "empty.parquet", tmp_path / "o1")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    with pytest.raises(Conflict, match="not an empty folder"):
        workspace.batch.score("credit/1", tmp_path / "in.parquet", tmp_path / "used")
    with pytest.raises(InvalidInput, match="engine"):
        workspace.batch.score("credit/1", tmp_path / "in.parquet", tmp_path / "o2", engine="x")
    assert not (tmp_path / "o1").exists()
    assert not (tmp_path / "o2").exists()


def test_log_predictions_writes_the_prediction_log(workspace: Workspace, tmp_path: Path) -> None:
    register_credit(workspace)
    write_input(tmp_path / "in.parquet", 2_000)
    job = workspace.batch.score(
        "credit/1",
        tmp_path / "in.parquet",
        tmp_path / "out",
        workers=1,
        chunk_rows=500,
        log_predictions=True,
        sample_rate=0.25,
    )
    log = tables.prediction_log
    with workspace.metadata.read() as conn:
        rows = conn.execute(select(log).where(log.c.job_id == job.id)).all()
    assert 300 < len(rows) < 700
    assert {r.source for r in rows} == {"batch"}
    assert {r.model_version for r in rows} == {1}
    assert len({(r.request_id, r.row_index) for r in rows}) == len(rows)

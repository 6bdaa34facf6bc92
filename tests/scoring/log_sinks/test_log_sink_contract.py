"""The contract every prediction-log sink passes (database; Parquet in a folder and on S3), on
both metadata backends: what is submitted reads back the same, nothing is lost or doubled when
the destination fails, spilled rows are ingested exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modelcycle import Workspace
from modelcycle.scoring import LogRecord, PredictionLog, read_predictions
from modelcycle.scoring.log_sinks import LogSink, SinkOptions, sink_class
from modelcycle.store import MetadataStore

T0 = time.time() - 7200  # two hours ago: records span two hourly partitions
Factory = Callable[[bool], LogSink]


@pytest.fixture(params=["database", "parquet-local", "parquet-s3"])
def make_sink(
    request: pytest.FixtureRequest,
    workspace: Workspace,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Factory:
    """``make_sink(broken)``: the sink, or one whose destination refuses every write; both
    spill into the same folder, as a restarted server would."""
    spill = tmp_path / "spill"
    kind = str(request.param)
    if kind == "parquet-s3":
        server = request.getfixturevalue("s3_server")
        for name, value in server.env.items():
            monkeypatch.setenv(name, value)
        good, bad = f"s3://{server.new_bucket()}/team", "s3://mc-no-such-bucket-here/team"
    else:
        (tmp_path / "a-file").write_text("not a folder")
        good, bad = str(tmp_path / "artifacts"), str(tmp_path / "a-file" / "artifacts")
    down = MetadataStore(f"sqlite:///{tmp_path}/no-such-dir/x.db")  # any write fails at once

    def factory(broken: bool) -> LogSink:
        if kind == "database":
            meta, url = (down if broken else workspace.metadata), ""
        else:
            meta, url = workspace.metadata, (bad if broken else good)
        options = SinkOptions(
            meta, spill, artifacts_url=url, db_timeout=0.5, flush_rows=50, flush_seconds=0.2
        )
        return sink_class(kind.split("-")[0])(options, None)

    return factory


def _records() -> list[LogRecord]:
    """Table and fast-path (numpy) requests, probabilities, a null, a shadow, two versions."""
    out = []
    for i in range(30):
        at = T0 + i * 300  # every 5 minutes: 2.5 hours
        if i % 3 == 0:
            matrix = np.array([[float(i), np.nan if i % 2 else 1.0], [i + 0.5, 2.0]])
            inputs: pa.Table | np.ndarray = matrix
            columns: tuple[str, ...] | None = ("x", "y")
        else:
            inputs = pa.table({"x": [float(i)], "y": [3.0]})
            columns = None
        n = 2 if i % 3 == 0 else 1
        proba = np.tile([[0.25, 0.75]], (n, 1)) if i % 5 == 0 else None
        out.append(
            LogRecord(
                request_id=f"req-{i}",
                model_name="m",
                model_version=2 if i >= 20 else 1,
                inputs=inputs,
                predictions=None if proba is not None else np.array([i % 2] * n),
                probabilities=proba,
                classes=[0, 1],
                latency_ms=1.0 + i,
                at=at,
                shadow=i == 7,
                columns=columns,
            )
        )
    return out


def _expected_rows(records: list[LogRecord]) -> int:
    return sum(2 if isinstance(r.inputs, np.ndarray) else 1 for r in records if not r.shadow)


def _run(log: PredictionLog, records: list[LogRecord]) -> None:
    log.start(ingest_leftovers=False)
    for rec in records:
        assert log.submit(rec)
    log.close()


def test_what_is_submitted_reads_back_the_same(make_sink: Factory, workspace: Workspace) -> None:
    records = _records()
    log = PredictionLog(workspace.metadata, "unused", flush_interval=0.02, sink=make_sink(False))
    _run(log, records)
    assert log.stats.dropped_rows == 0
    assert log.stats.logged_rows == sum(
        2 if isinstance(r.inputs, np.ndarray) else 1 for r in records
    )
    table = read_predictions(workspace.metadata, "m")
    assert table.num_rows == _expected_rows(records)
    assert table.column_names[-6:] == [
        "prediction", "probabilities", "model_version", "request_id", "row_index", "at",
    ]  # fmt: skip
    assert table.column("at").to_pylist() == sorted(table.column("at").to_pylist())
    rows = {(r["request_id"], r["row_index"]): r for r in table.to_pylist()}
    assert rows[("req-3", 1)]["x"] == 3.5
    assert rows[("req-3", 0)]["y"] is None  # the fast path's NaN is a null, as sent
    assert rows[("req-4", 0)]["y"] == 3.0
    assert rows[("req-4", 0)]["prediction"] == 0
    assert rows[("req-5", 0)]["prediction"] == 1  # probabilities only: the likelier class
    assert rows[("req-5", 0)]["probabilities"] == [0.25, 0.75]
    assert rows[("req-4", 0)]["probabilities"] is None
    assert ("req-7", 0) not in rows
    shadow = read_predictions(workspace.metadata, "m", include_shadow=True)
    assert shadow.num_rows == table.num_rows + 1
    v2 = read_predictions(workspace.metadata, "m", version=2)
    assert set(v2.column("request_id").to_pylist()) == {f"req-{i}" for i in range(20, 30)}
    # A window: [T0 + 50 min, T0 + 100 min) holds requests 10..19 (one shadow excluded: none).
    since = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(T0 + 3000))
    until = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(T0 + 6000))
    window = read_predictions(workspace.metadata, "m", since=since, until=until)
    got = sorted({int(r.split("-")[1]) for r in window.column("request_id").to_pylist()})
    assert got == list(range(10, 20)) or got == list(range(11, 21))  # T0's fraction of a second
    assert read_predictions(workspace.metadata, "m", limit=3).num_rows == 3
    assert read_predictions(workspace.metadata, "other").num_rows == 0


def test_a_failed_destination_spills_and_the_next_start_ingests_once(
    make_sink: Factory, workspace: Workspace
) -> None:
    records = _records()
    broken = PredictionLog(workspace.metadata, "unused", flush_interval=0.02, sink=make_sink(True))
    _run(broken, records)
    total = sum(2 if isinstance(r.inputs, np.ndarray) else 1 for r in records)
    assert broken.stats.spilled_rows == total
    assert broken.stats.dropped_rows == 0
    assert read_predictions(workspace.metadata, "m").num_rows == 0
    healthy = make_sink(False)
    done = healthy.ingest_spill()
    assert done.rows == total
    assert healthy.ingest_spill().files == 0  # moved once: the files are gone
    assert read_predictions(workspace.metadata, "m").num_rows == _expected_rows(records)
    # A server started on that folder ingests leftovers first (here: none left, nothing doubled).
    again = PredictionLog(workspace.metadata, "unused", flush_interval=0.02, sink=make_sink(False))
    again.start()
    again.close()
    assert read_predictions(workspace.metadata, "m").num_rows == _expected_rows(records)

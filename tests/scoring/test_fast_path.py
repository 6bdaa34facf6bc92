"""The all-numeric fast path answers exactly as the general path and the model itself; what it
cannot take falls back with the general path's errors; logged requests survive a SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest
from _scoring_helpers import ServerProcess
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from starlette.testclient import TestClient

from modelcycle import Workspace, init_workspace
from modelcycle.errors import ModelcycleError
from modelcycle.scoring import ScoringEngine, read_predictions
from modelcycle.scoring.protocols import mlflow
from modelcycle.scoring.server import create_app

COLUMNS = ["a", "b", "c", "d", "n", "k"]  # n: nullable double, k: int64


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.normal(size=rows) for c in COLUMNS[:5]})
    frame.loc[rng.random(rows) < 0.2, "n"] = np.nan
    frame["k"] = rng.integers(-5, 6, rows).astype(np.int64)
    return frame


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, Any]]:
    root = tmp_path_factory.mktemp("fast") / "ws"
    with pytest.MonkeyPatch.context() as mp:
        for var in ("MODELCYCLE_HOME", "MODELCYCLE_DB_URL", "MODELCYCLE_ARTIFACTS"):
            mp.delenv(var, raising=False)
        mp.setenv("MODELCYCLE_ACTOR", "tester")
        ws, _ = init_workspace(root)
        x = _frame(2_000, 0)
        y = (x.a + x.b * x.k + np.nan_to_num(x.n.to_numpy()) > 0).astype(np.int64)
        model = make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=20))
        model.fit(x, y)
        ws.registry.register(model, "num", input_example=x.head(50))
        try:
            yield ws, model
        finally:
            ws.close()


@pytest.fixture(scope="module")
def engine(served: tuple[Workspace, Any]) -> Iterator[ScoringEngine]:
    ws, _ = served
    eng = ScoringEngine([ws.registry.load("num/1")])
    eng.load()
    yield eng
    eng.close()


def _body(frame: pd.DataFrame, *, ints_as_floats: bool = True) -> bytes:
    data = [
        [None if isinstance(v, float) and v != v else v for v in row]
        for row in frame.astype(object).to_numpy().tolist()
    ]
    if ints_as_floats:
        for row in data:
            row[-1] = float(row[-1])
    return orjson.dumps({"dataframe_split": {"columns": list(frame.columns), "data": data}})


def _general(engine: ScoringEngine, raw: bytes) -> np.ndarray:
    slot = engine.get("num")
    decoded = mlflow.decode_json(
        orjson.loads(raw), order=slot.signature.input_names, types=slot.input_types
    )
    result = asyncio.run(engine.score_slot(slot, decoded.table))
    assert result.predictions is not None
    return result.predictions


def test_the_signature_allows_the_fast_path(engine: ScoringEngine) -> None:
    slot = engine.get("num")
    assert slot.fast is not None
    kinds = {c.name: (c.type, c.nullable) for c in slot.signature.inputs}
    assert kinds["n"] == ("double", True)
    assert kinds["k"] == ("int64", False)


def test_fast_path_equals_general_path_and_model_predict(
    engine: ScoringEngine, served: tuple[Workspace, Any]
) -> None:
    _, model = served
    frame = _frame(10_000, 7)
    # Extremes: large and tiny magnitudes, signed zeros, the int column near +-2**53.
    frame.loc[0, ["a", "b", "c", "d"]] = [1e15, -1e15, 5e-324, -0.0]
    frame.loc[1, ["a", "b"]] = [2.0**52 + 0.5, -1e-300]
    frame.loc[2, "k"] = 2**53 - 1
    frame.loc[3, "k"] = -(2**53 - 1)
    raw = _body(frame)  # the int column sent as floats (3.0), nulls in the nullable column
    slot = engine.get("num")
    assert slot.fast is not None
    rows = slot.fast.decode(raw, orjson.loads(raw), engine.max_rows_per_request)
    assert rows is not None
    assert rows.shape == (10_000, 6)
    assert rows.dtype == np.float64
    fast = asyncio.run(engine.score_array(slot, rows)).predictions
    assert fast is not None
    general = _general(engine, raw)
    direct = np.asarray(model.predict(frame))
    assert np.array_equal(fast, general)
    assert np.array_equal(fast, direct)
    # ints sent as ints take the same way and give the same answers
    raw_ints = _body(frame.iloc[:500], ints_as_floats=False)
    again = slot.fast.decode(raw_ints, orjson.loads(raw_ints), 10_000)
    assert again is not None
    out = asyncio.run(engine.score_array(slot, again)).predictions
    assert np.array_equal(np.asarray(out), direct[:500])


def _bad_bodies() -> dict[str, bytes]:
    frame = _frame(3, 1)
    data = frame.astype(object).to_numpy().tolist()
    for row in data:
        row[4] = None if row[4] != row[4] else row[4]

    def split(columns: list[str], rows: list[list[Any]], **extra: Any) -> bytes:
        return orjson.dumps({"dataframe_split": {"columns": columns, "data": rows}, **extra})

    def edit(j: int, value: Any) -> list[list[Any]]:
        out = [list(r) for r in data]
        out[1][j] = value
        return out

    return {
        "boolean": split(COLUMNS, edit(0, True)),
        "string": split(COLUMNS, edit(1, "1.5")),
        "null where none allowed": split(COLUMNS, edit(2, None)),
        "fraction in an int column": split(COLUMNS, edit(5, 2.5)),
        "integer beyond int64": split(COLUMNS, edit(3, 2**63)),
        "integer beyond float64's exact range": split(COLUMNS, edit(3, 2**53 + 1)),
        "magnitude of 2**53 or more": split(COLUMNS, edit(0, 1e300)),
        "missing column": split(COLUMNS[:-1], [r[:-1] for r in data]),
        "ragged row": split(COLUMNS, [data[0], data[1][:-1]]),
        "reordered columns": split(COLUMNS[::-1], [r[::-1] for r in data]),
        "params": split(COLUMNS, data, params={"predict_method": "predict"}),
    }


@pytest.fixture(scope="module")
def server(
    served: tuple[Workspace, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    ws, _ = served
    log: Path = tmp_path_factory.mktemp("fastlog") / "server.log"
    proc = ServerProcess(ws.root, "num/1", log=log)
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def test_what_the_fast_path_cannot_take_falls_back_with_the_same_errors(
    engine: ScoringEngine, server: ServerProcess
) -> None:
    slot = engine.get("num")
    assert slot.fast is not None
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for what, raw in _bad_bodies().items():
            assert slot.fast.decode(raw, orjson.loads(raw), 10_000) is None, what
            answer = client.post(
                "/invocations", content=raw, headers={"Content-Type": "application/json"}
            )
            expected = _general_answer(engine, raw)
            assert answer.status_code == expected[0], (what, answer.text)
            key = "error" if expected[0] != 200 else "predictions"
            assert answer.json()[key] == expected[1], what


def _general_answer(engine: ScoringEngine, raw: bytes) -> tuple[int, Any]:
    """What the general path answers: (200, predictions) or (400, the error's message)."""
    try:
        return 200, _general(engine, raw).tolist()
    except ModelcycleError as exc:
        return 400, str(exc)


def test_every_logged_request_is_in_the_log_after_sigterm(
    served: tuple[Workspace, Any], tmp_path: Path
) -> None:
    ws, _ = served
    proc = ServerProcess(ws.root, "num/1", log=tmp_path / "server.log")
    frame = _frame(40, 3)
    try:
        proc.wait_ready()
        with httpx.Client(base_url=proc.url, timeout=30) as client:
            ids = []
            for i in range(40):  # one row each, on the fast path; every 5th takes the general way
                body = _body(frame.iloc[i : i + 1])
                if i % 5 == 0:
                    body = orjson.dumps(
                        {"dataframe_records": frame.iloc[i : i + 1].to_dict("records")}
                    )
                rid = f"sigterm-{i}"
                answer = client.post(
                    "/invocations",
                    content=body,
                    headers={"Content-Type": "application/json", "X-Request-ID": rid},
                )
                assert answer.status_code == 200, answer.text
                ids.append(rid)
    finally:
        assert proc.stop() == 0, proc.log()
    logged = read_predictions(ws.metadata, "num")
    got = [r for r in logged.column("request_id").to_pylist() if r.startswith("sigterm-")]
    assert sorted(got) == sorted(ids)
    table: pa.Table = logged.filter(pa.compute.starts_with(logged.column("request_id"), "sigterm-"))
    assert set(table.column_names) >= set(COLUMNS)


@pytest.mark.parametrize("freeze", [False, True])
def test_a_server_freezes_its_heap_once_its_model_is_loaded(
    served: tuple[Workspace, Any], freeze: bool
) -> None:
    """With freeze_after_load (what `modelcycle serve` asks for) the loaded heap leaves the
    cyclic collector's reach, so no full collection walks it under load; without, nothing is
    frozen (an app embedded in a longer-lived process)."""
    ws, _ = served
    app = create_app(ScoringEngine([ws.registry.load("num/1")]), freeze_after_load=freeze)
    gc.unfreeze()
    try:
        with TestClient(app) as client:  # runs the lifespan: the load, then the freeze
            deadline = time.monotonic() + 60
            while client.get("/v2/health/ready").status_code != 200:
                assert time.monotonic() < deadline, "the model did not load"
                time.sleep(0.05)
            # The freeze follows the load in the same task: give it a moment either way.
            while not gc.get_freeze_count() and time.monotonic() < deadline and freeze:
                time.sleep(0.05)
            time.sleep(0.2)
            assert (gc.get_freeze_count() > 0) == freeze
            assert client.post("/invocations", content=_body(_frame(3, 9))).status_code == 200
    finally:
        gc.unfreeze()

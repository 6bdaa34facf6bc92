"""The server's operations against real ``modelcycle serve`` processes: prediction log (SIGTERM
flush, spill and ingest), feedback, canary and shadow traffic, hot swap, auth, access log.

Each test that changes tokens, aliases or locks the database gets a workspace of its own.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from _scoring_helpers import ServerProcess, metric, ridge_frame
from sklearn.linear_model import Ridge
from sqlalchemy import func, select

from _cli import run_cli
from modelcycle import Workspace, init_workspace
from modelcycle.scoring import read_feedback, read_predictions
from modelcycle.store import tables


def _workspace(root: Path, versions: int = 3) -> Workspace:
    """A SQLite workspace with ``ridge`` versions 1..n (each answering differently), champion=1."""
    ws, _ = init_workspace(root, db_url=f"sqlite:///{root.parent / (root.name + '.db')}")
    x, y = ridge_frame()
    for v in range(1, versions + 1):
        ws.registry.register(Ridge().fit(x, y * v + 10 * v), "ridge", input_example=x.head(20))
    ws.registry.set_alias("ridge", "champion", 1)
    return ws


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MODELCYCLE_HOME", "MODELCYCLE_DB_URL", "MODELCYCLE_ARTIFACTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MODELCYCLE_ACTOR", "tester")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    with pytest.MonkeyPatch.context() as mp:
        for var in ("MODELCYCLE_HOME", "MODELCYCLE_DB_URL", "MODELCYCLE_ARTIFACTS"):
            mp.delenv(var, raising=False)
        mp.setenv("MODELCYCLE_ACTOR", "tester")
        ws = _workspace(tmp_path_factory.mktemp("ops") / "ws")
    try:
        yield ws
    finally:
        ws.close()


ROW = {"a": 1.0, "b": 2.0, "c": 3.0}


def _start(root: Path, tmp_path: Path, *args: str) -> ServerProcess:
    server = ServerProcess(root, *args, log=tmp_path / f"server-{time.monotonic_ns()}.log")
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def _count(ws: Workspace, prefix: str, *, shadow: bool | None = None) -> int:
    t = tables.prediction_log
    query = select(func.count()).where(t.c.request_id.like(f"{prefix}%"))
    if shadow is not None:
        query = query.where(t.c.shadow.is_(shadow))
    with ws.metadata.read() as conn:
        return int(conn.execute(query).scalar_one())


def _predict(client: httpx.Client, rid: str, **params: str) -> httpx.Response:
    return client.post(
        "/predict/ridge", json={"rows": [ROW]}, headers={"X-Request-ID": rid}, params=params
    )


# -- prediction log ----------------------------------------------------------------------------


def test_sigterm_flushes_every_answered_row_and_access_log(
    shared: Workspace, tmp_path: Path
) -> None:
    server = _start(shared.root, tmp_path, "ridge@champion", "--access-log", "json")
    ok = [0] * 8

    def load(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i in range(10_000):
                try:
                    resp = _predict(client, f"sig-{worker}-{i}")
                except httpx.TransportError:
                    return  # the server stopped accepting
                if resp.status_code == 200:
                    ok[worker] += 1
                else:
                    return

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(load, w) for w in range(8)]
        deadline = time.monotonic() + 20
        while sum(ok) < 300 and time.monotonic() < deadline:
            time.sleep(0.02)
        code = server.stop()  # SIGTERM while requests are in flight
        for f in futures:
            f.result(timeout=30)
    assert code == 0, server.log()
    answered = sum(ok)
    assert answered >= 300
    assert _count(shared, "sig-") == answered
    lines = [orjson.loads(x) for x in server.log().splitlines() if x.startswith('{"at"')]
    ours = [x for x in lines if str(x["request_id"]).startswith("sig-") and x["status"] == 200]
    assert len(ours) == answered
    assert {"route", "status", "latency_ms", "model_version", "request_id"} <= set(ours[0])
    assert ours[0]["route"] == "/predict/ridge"
    assert ours[0]["model_version"] == 1


def test_feedback_joins_predictions_by_request_id(shared: Workspace, tmp_path: Path) -> None:
    server = _start(shared.root, tmp_path, "ridge@champion")
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            answers = {
                f"fb-{i}": _predict(client, f"fb-{i}").json()["predictions"][0] for i in range(5)
            }
            two = client.post(
                "/predict/ridge", json={"rows": [ROW, ROW]}, headers={"X-Request-ID": "fb-two"}
            )
            assert two.status_code == 200
            body = {"feedback": [{"request_id": rid, "label": 7.5} for rid in answers]}
            body["feedback"].append({"request_id": "fb-unknown", "label": 1})
            resp = client.post("/feedback", json=body)
            assert resp.status_code == 200, resp.text
            assert resp.json() == {"stored": 6, "matched": 5, "unmatched": 1}
            single = client.post("/feedback", json={"request_id": "fb-two", "label": 3, "row": 1})
            assert single.json() == {"stored": 1, "matched": 1, "unmatched": 0}
            bad = client.post("/feedback", json={"feedback": [{"request_id": 5}, {"label": 1}]})
            assert bad.status_code == 400
            fields = {p["field"] for p in bad.json()["problems"]}
            assert {
                "feedback[0].request_id",
                "feedback[0].label",
                "feedback[1].request_id",
            } <= fields
            metrics = client.get("/metrics").text
            assert metric(metrics, "modelcycle_prediction_log_dropped_rows_total") == 0
    finally:
        assert server.stop() == 0
    preds = read_predictions(shared.metadata, "ridge")
    assert preds.column_names[:3] == ["a", "b", "c"]
    assert preds.column_names[3:] == [
        "prediction",
        "model_version",
        "request_id",
        "row_index",
        "at",
    ]
    mine = {r["request_id"]: r for r in preds.to_pylist() if str(r["request_id"]).startswith("fb-")}
    for rid, value in answers.items():
        assert mine[rid]["prediction"] == pytest.approx(value)
        assert mine[rid]["a"] == 1.0
        assert mine[rid]["model_version"] == 1
    feedback = read_feedback(shared.metadata, "ridge").to_pylist()
    labels = {(f["request_id"], f["row_index"]): f["label"] for f in feedback}
    assert all(labels[(rid, None)] == 7.5 for rid in answers)
    assert labels[("fb-two", 1)] == 3
    assert ("fb-unknown", None) not in labels  # stored, but matches no prediction of ridge
    window = read_predictions(shared.metadata, "ridge", since=mine["fb-0"]["at"], version=1)
    assert "fb-0" in window.column("request_id").to_pylist()


def test_canary_split_and_shadow_never_returned(shared: Workspace, tmp_path: Path) -> None:
    server = _start(
        shared.root, tmp_path, "ridge@champion", "--canary", "ridge/2=10", "--shadow", "ridge/3"
    )
    n = 2000
    versions: list[int] = []
    values: dict[int, set[float]] = {1: set(), 2: set()}
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i in range(n):
                resp = _predict(client, f"cs-{i}")
                assert resp.status_code == 200, resp.text
                version = int(resp.headers["X-Model-Version"])
                assert resp.json()["version"] == version
                versions.append(version)
                values[version].add(round(resp.json()["predictions"][0], 6))
            v2 = client.post(
                "/v2/models/ridge/infer",
                json={
                    "inputs": [
                        {"name": k, "datatype": "FP64", "shape": [1], "data": [v]}
                        for k, v in ROW.items()
                    ]
                },
            ).json()
            assert v2["model_version"] in ("1", "2")
    finally:
        assert server.stop() == 0
    share = versions.count(2) / n
    assert 0.075 <= share <= 0.125, share
    assert set(versions) == {1, 2}
    assert len(values[1]) == 1
    assert len(values[2]) == 1
    assert values[1] != values[2]
    # Every request was mirrored to version 3; its answers are in the log, never returned.
    assert _count(shared, "cs-", shadow=True) == n
    assert _count(shared, "cs-", shadow=False) == n
    shadow = read_predictions(shared.metadata, "ridge", version=3, include_shadow=True)
    shadow_values = {round(v, 6) for v in shadow.column("prediction").to_pylist()}
    assert shadow_values
    assert not shadow_values & (values[1] | values[2])
    assert read_predictions(shared.metadata, "ridge", version=3).num_rows == 0


# -- spill and ingest ------------------------------------------------------------------------


def test_spill_when_the_database_is_locked_then_ingest(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws", versions=1)
    db = tmp_path / "ws.db"
    spill = ws.root / ".modelcycle" / "spill"
    server = _start(ws.root, tmp_path, "ridge/1")
    lock = sqlite3.connect(db, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")  # every writer now waits (or times out)
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i in range(100):
                started = time.perf_counter()
                assert _predict(client, f"sp-{i}").status_code == 200
                assert time.perf_counter() - started < 0.5  # scoring never waits for the log
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                text = client.get("/metrics").text
                if metric(text, "modelcycle_prediction_log_spilled_rows_total") == 100:
                    break
                time.sleep(0.2)
            assert metric(text, "modelcycle_prediction_log_spilled_rows_total") == 100
            assert metric(text, "modelcycle_prediction_log_dropped_rows_total") == 0
        assert server.stop() == 0, server.log()
    finally:
        server.stop()
        lock.execute("ROLLBACK")
        lock.close()
    files = list(spill.glob("predictions-*.jsonl"))
    assert len(files) == 1
    assert len(files[0].read_bytes().splitlines()) == 100
    backup = tmp_path / files[0].name
    shutil.copy(files[0], backup)
    assert _count(ws, "sp-") == 0
    # The next server ingests what is left at its start.
    server = _start(ws.root, tmp_path, "ridge/1")
    try:
        deadline = time.monotonic() + 20
        while _count(ws, "sp-") < 100 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        assert server.stop() == 0
    assert _count(ws, "sp-") == 100
    assert not list(spill.glob("predictions-*.jsonl"))
    # Ingesting the same file again (a crash between commit and unlink) duplicates nothing.
    shutil.copy(backup, spill / backup.name)
    out = run_cli("predictions", "ingest-spill", cwd=ws.root, check=True)
    assert "Ingested 100 row(s) from 1 spill file(s)" in out.stdout
    assert _count(ws, "sp-") == 100
    out = run_cli("predictions", "ingest-spill", cwd=ws.root, check=True)
    assert "Ingested 0 row(s)" in out.stdout
    ws.close()


# -- hot swap ----------------------------------------------------------------------------------


def test_hot_swap_under_load_fails_no_request(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws", versions=2)
    server = _start(ws.root, tmp_path, "ridge@champion", "--poll-seconds", "0.3", "--no-log")
    stop = threading.Event()
    seen: list[list[int]] = [[] for _ in range(4)]
    failures: list[str] = []

    def load(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not stop.is_set():
                try:
                    resp = client.post("/predict", json={"rows": [ROW]})
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if resp.status_code != 200:
                    failures.append(resp.text)
                else:
                    seen[worker].append(int(resp.headers["X-Model-Version"]))

    try:
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(load, w) for w in range(4)]
            time.sleep(1.0)
            ws.registry.set_alias("ridge", "champion", 2)
            deadline = time.monotonic() + 15
            while not all(s and s[-1] == 2 for s in seen) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            stop.set()
            for f in futures:
                f.result(timeout=30)
        assert not failures, failures[:3]
        for versions in seen:
            assert versions[0] == 1
            assert versions[-1] == 2
            first_two = versions.index(2)
            assert set(versions[first_two:]) == {2}  # once swapped, never back
        # POST /admin/reload swaps at once, without waiting for the poll.
        ws.registry.set_alias("ridge", "champion", 1)
        resp = httpx.post(f"{server.url}/admin/reload", timeout=30)
        assert resp.status_code == 200
        swapped = resp.json()["swapped"]
        assert swapped in ([{"model": "ridge", "ref": "ridge@champion", "from": 2, "to": 1}], [])
        reply = httpx.post(f"{server.url}/predict", json={"rows": [ROW]})
        assert reply.headers["X-Model-Version"] == "1"
        assert metric(httpx.get(f"{server.url}/metrics").text, "modelcycle_hot_swaps_total") >= 2
    finally:
        stop.set()
        assert server.stop() == 0
        ws.close()


# -- auth --------------------------------------------------------------------------------------


def _token(root: Path, name: str, role: str) -> str:
    out = run_cli("tokens", "create", name, "--role", role, cwd=root, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_auth_matrix_and_revocation(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws", versions=1)
    roles = ("reader", "scorer", "operator", "admin")
    tokens = {role: _token(ws.root, f"t-{role}", role) for role in roles}
    server = _start(ws.root, tmp_path, "ridge/1")
    predict: dict[str, Any] = {"json": {"rows": [ROW]}}
    feedback: dict[str, Any] = {"json": {"request_id": "x", "label": 1}}
    routes: list[tuple[str, str, dict[str, Any], str | None]] = [
        ("GET", "/v2/health/ready", {}, None),
        ("GET", "/v2/health/live", {}, None),
        ("GET", "/ping", {}, None),
        ("GET", "/metrics", {}, "reader"),
        ("GET", "/v2/models/ridge", {}, "reader"),
        ("GET", "/version", {}, "reader"),
        ("POST", "/predict", predict, "scorer"),
        ("POST", "/invocations", {"json": {"dataframe_records": [ROW]}}, "scorer"),
        ("POST", "/feedback", feedback, "scorer"),
        ("POST", "/admin/reload", {}, "operator"),
    ]
    order = ["reader", "scorer", "operator", "admin"]
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for method, path, kwargs, needed in routes:
                anon = client.request(method, path, **kwargs)
                if needed is None:
                    assert anon.status_code == 200, (path, anon.text)
                    continue
                assert anon.status_code == 401, (path, anon.status_code)
                assert anon.headers["WWW-Authenticate"].startswith("Bearer")
                wrong = client.request(
                    method, path, headers={"Authorization": "Bearer mc_000000000000_nope"}, **kwargs
                )
                assert wrong.status_code == 401
                for role, token in tokens.items():
                    resp = client.request(
                        method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs
                    )
                    want = 200 if order.index(role) >= order.index(needed) else 403
                    assert resp.status_code == want, (path, role, resp.status_code, resp.text)
            # Revoked: refused from the next reload on.
            listed = run_cli("tokens", "list", cwd=ws.root, check=True).stdout
            scorer_id = tokens["scorer"].split("_")[1]
            assert scorer_id in listed
            assert tokens["scorer"] not in listed
            run_cli("tokens", "revoke", scorer_id, cwd=ws.root, check=True)
            op = {"Authorization": f"Bearer {tokens['operator']}"}
            assert client.post("/admin/reload", headers=op).json()["active_tokens"] == 3
            gone = client.post(
                "/predict", headers={"Authorization": f"Bearer {tokens['scorer']}"}, **predict
            )
            assert gone.status_code == 401
    finally:
        assert server.stop() == 0
    t = tables.api_tokens
    with ws.metadata.read() as conn:
        hashes = [r.token_hash for r in conn.execute(select(t.c.token_hash))]
    assert len(hashes) == 4
    assert not set(hashes) & set(tokens.values())
    actions = [e.action for e in ws.audit.events()]
    assert actions.count("token.created") == 4
    assert actions.count("token.revoked") == 1
    again = run_cli("tokens", "revoke", scorer_id, cwd=ws.root)
    assert again.returncode == 4  # Conflict: already revoked
    ws.close()

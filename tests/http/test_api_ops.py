"""Work over HTTP: an idempotent deploy POST (one deployment), jobs, and the event stream
(every audit event once, in order, across a disconnect)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn
from _api import Api
from sklearn.linear_model import LogisticRegression

from modelcycle import Workspace
from modelcycle.interfaces.http import ApiSettings, create_app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_deploy_post_retried_with_one_idempotency_key_deploys_once(api: Api) -> None:
    if api.ws.settings.db_url.startswith("postgresql"):
        # A real local deploy takes ~30 s; the key store's SQL runs on both backends in
        # test_an_idempotency_key_is_honoured_by_another_server_on_the_same_database.
        pytest.skip("deploys for real: run once, on SQLite")
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})
    y = (x.a + x.b > 0).astype("int64")
    api.ws.registry.register(LogisticRegression().fit(x, y), "tiny", input_example=x.head(5))
    body = {"model": "tiny/1", "endpoint": "tiny", "port": _free_port()}
    headers = {"Idempotency-Key": "deploy-tiny-1"}
    answers: list[httpx.Response] = []

    def post() -> None:
        with api.client("operator") as c:
            answers.append(c.post("/deployments", json=body, headers=headers))

    try:
        # A client that timed out and retried at once: both requests arrive together.
        threads = [threading.Thread(target=post) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        with api.client("operator") as c:
            answers.append(c.post("/deployments", json=body, headers=headers))
        assert [a.status_code for a in answers] == [201, 201, 201], [a.text for a in answers]
        assert len({a.json()["id"] for a in answers}) == 1
        assert sorted(a.headers.get("idempotent-replayed", "") for a in answers) == [
            "", "true", "true",
        ]  # fmt: skip
        assert len(api.ws.deploy.list("tiny", all=True)) == 1
        assert api.ws.deploy.list("tiny")[0].created_by == "operator-bot"
        with api.client("reader") as c:
            shown = c.get("/deployments/tiny").json()
            assert shown["active"]["model"] == "tiny/1"
            assert len(shown["attempts"]) == 1
    finally:
        with api.client("operator") as c:
            c.post("/deployments/tiny/stop")


def _events(c: httpx.Client, headers: dict[str, str], want: int) -> Iterator[dict[str, str]]:
    """Parse SSE frames until ``want`` events came (the server closes after 10 s anyway)."""
    got = 0
    with c.stream("GET", "/events", params={"max_seconds": 10}, headers=headers) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        frame: dict[str, str] = {}
        for line in r.iter_lines():
            if line == "":
                if "id" in frame:
                    yield frame
                    got += 1
                    if got >= want:
                        return
                frame = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                frame[key] = value.lstrip(" ")


def test_event_stream_resumes_after_a_disconnect_without_losing_an_event(api: Api) -> None:
    ws = api.ws
    for i in range(5):
        ws.audit.note(f"before {i}")
    total_before = len(ws.audit.events())
    seen: list[int] = []
    with api.client("reader") as c:
        for frame in _events(c, {}, want=total_before - 2):
            seen.append(int(frame["id"]))
            assert json.loads(frame["data"])["seq"] == int(frame["id"])
        # Disconnected: more happens, including a job state change.
        for i in range(5):
            ws.audit.note(f"while away {i}")
        job, _ = ws.automations.queue.enqueue("note", {"text": "x"})
        ws.automations.queue.cancel(job.id)
        total = len(ws.audit.events())
        kinds: dict[int, str] = {}
        for frame in _events(c, {"Last-Event-ID": str(seen[-1])}, want=total - len(seen)):
            seen.append(int(frame["id"]))
            kinds[int(frame["id"])] = frame["event"]
    assert seen == [e.seq for e in ws.audit.events()]
    assert "job" in kinds.values()
    assert "audit" in kinds.values()


def test_event_stream_needs_a_reader_and_a_sane_last_event_id(api: Api) -> None:
    with api.client(None) as c:
        assert c.get("/events").status_code == 401
    with api.client("reader") as c:
        r = c.get("/events", headers={"Last-Event-ID": "abc"})
        assert r.status_code == 400
        assert r.json()["problems"][0]["field"] == "Last-Event-ID"


def test_jobs_retry_and_cancel(api: Api) -> None:
    job, _ = api.ws.automations.queue.enqueue("note", {"text": "x"})
    with api.client("operator") as c:
        listed = c.get("/jobs").json()["items"]
        assert [j["id"] for j in listed] == [job.id]
        r = c.post(f"/jobs/{job.id}/cancel")
        assert r.status_code == 200
        assert r.json()["state"] == "cancelled"
        r = c.post(f"/jobs/{job.id}/retry", headers={"Idempotency-Key": "k1"})
        assert r.status_code == 200
        assert r.json()["state"] == "queued"
        again = c.post(f"/jobs/{job.id}/retry", headers={"Idempotency-Key": "k1"})
        assert again.status_code == 200
        assert again.headers["idempotent-replayed"] == "true"
        assert c.post(f"/jobs/{job.id}/retry").status_code == 409
    retried = [e for e in api.ws.audit.events() if e.action == "job.retried"]
    assert [e.actor for e in retried] == ["operator-bot"]


def test_an_idempotency_key_is_honoured_by_another_server_on_the_same_database(
    api: Api,
) -> None:
    """Two servers over one workspace database (two workers, or two hosts): a retry that
    reaches the other one gets the first answer, not a second run of the work."""
    job, _ = api.ws.automations.queue.enqueue("note", {"text": "x"})
    api.ws.automations.queue.cancel(job.id)
    other = Workspace(api.ws.root)
    app = create_app(other, ApiSettings(events_poll_seconds=0.05))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(1000):
            if server.started:
                break
            time.sleep(0.02)
        headers = {"Idempotency-Key": "retry-once", **_bearer(api.tokens["operator"])}
        with api.client("operator") as c:
            first = c.post(f"/jobs/{job.id}/retry", headers=headers)
        port = sock.getsockname()[1]
        again = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/jobs/{job.id}/retry", headers=headers, timeout=60
        )
        assert first.status_code == 200, first.text
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert [e.actor for e in api.ws.audit.events() if e.action == "job.retried"] == [
            "operator-bot"
        ]
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()
        other.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_why_walks_from_a_subject_back_through_jobs_to_the_first_cause(api: Api) -> None:
    from modelcycle.store import caused_by

    ws = api.ws
    trigger = ws.audit.note("drift seen", subject="model:credit/1")
    job, _ = ws.automations.queue.enqueue("note", {"text": "x"}, event_seq=trigger.seq)
    with caused_by(job.id):
        ws.audit.note("promoted because of drift", subject="model:credit/2")
    with api.client("reader") as c:
        r = c.get("/audit/why", params={"subject": "model:credit/2"})
        assert r.status_code == 200, r.text
        chain = [(e["action"], e["subject"]) for e in r.json()["events"]]
        assert chain == [
            ("audit.note", "model:credit/2"),
            ("job.queued", f"job:{job.id}"),
            ("audit.note", "model:credit/1"),
        ]
        assert c.get("/audit/why", params={"subject": "model:nothing/9"}).status_code == 404


def test_drift_check_posted_listed_and_read_whole(api: Api) -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 500), "y": rng.normal(0, 1, 500)})
    cur = pd.DataFrame({"x": rng.normal(3, 1, 500), "y": rng.normal(0, 1, 500)})
    api.ws.datasets.add("ref", ref)
    api.ws.datasets.add("cur", cur)
    with api.client("operator") as c:
        body = {"reference": "data:ref@1", "current": "data:cur@1"}
        r = c.post("/monitoring/drift", json=body, headers={"Idempotency-Key": "d1"})
        assert r.status_code == 201, r.text
        again = c.post("/monitoring/drift", json=body, headers={"Idempotency-Key": "d1"})
        assert again.json()["id"] == r.json()["id"]
        listed = c.get("/monitoring/checks").json()["items"]
        assert [(x["id"], x["drifted_columns"]) for x in listed] == [(r.json()["id"], ["x"])]
        whole = c.get(f"/monitoring/checks/{listed[0]['id']}").json()
        assert {col["name"] for col in whole["columns"]} == {"x", "y"}
        assert c.get("/monitoring/checks/999").status_code == 404
        bad = c.post("/monitoring/drift", json={"reference": "/etc/passwd", "current": "x"})
        assert bad.status_code == 400
        assert bad.json()["problems"][0]["field"] == "reference"
    checked = [e for e in api.ws.audit.events() if e.action == "drift.checked"]
    assert [e.actor for e in checked] == ["operator-bot"]


def test_audit_verify_and_export_as_the_cli_writes_them(api: Api, tmp_path: Path) -> None:
    with api.client("reader") as c:
        verify = c.get("/audit/verify").json()
        exported = c.get("/audit/export")
    assert verify["ok"] is True
    assert verify["problem"] is None
    assert verify["head_seq"] == api.ws.audit.head().seq
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    api.ws.audit.export(tmp_path / "cli.jsonl")
    assert exported.text == (tmp_path / "cli.jsonl").read_text()

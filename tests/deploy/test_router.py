"""The endpoint router: a stable URL per endpoint, and no failed request while versions switch
(and switch back) under load."""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request

import pytest
from _deploy_helpers import audit_actions, free_port, pid_alive, wait_gone
from _load import BODY, Load

from _cli import run_cli
from modelcycle import Workspace
from modelcycle.deploy import DeploymentFailed
from modelcycle.errors import Conflict


def versions_by_thread(load: Load, since: float, until: float) -> dict[int, list[str | None]]:
    out: dict[int, list[str | None]] = {}
    for a in load.answers:
        if since <= a.started < until:
            out.setdefault(a.thread, []).append(a.version)
    return out


def test_no_request_fails_while_versions_switch_and_roll_back(dws: Workspace) -> None:
    import time

    port = free_port()
    v1 = dws.deploy("credit/1", endpoint="load", port=port)
    assert v1.url == f"http://127.0.0.1:{port}"
    load = Load(v1.url, threads=4).start()
    try:
        load.wait_for(20, version="1")

        # v2 over v1: requests flow through the switch; blue stops only once drained.
        t_deploy = time.monotonic()
        v2 = dws.deploy("credit/2", endpoint="load")
        t_switched = time.monotonic()
        assert v2.url == v1.url
        assert v1.instance is not None
        assert v1.instance.pid is not None
        assert wait_gone(v1.instance.pid)
        load.wait_for(20, version="2")

        # A version that fails its smoke test: rolled back before any client sees it.
        t_bad = time.monotonic()
        with pytest.raises(DeploymentFailed, match="smoke test failed"):
            dws.deploy("credit/3", endpoint="load")
        load.wait_for(20, version="2")

        # A version that takes traffic, then goes over the watch's p99 limit: the router
        # sends the traffic back to v2 and the new server stops.
        t_watch = time.monotonic()
        with pytest.raises(DeploymentFailed, match="p99 latency") as watched:
            dws.deploy("credit/1", endpoint="load", watch=20, max_p99_ms=0.001)
        t_back = time.monotonic()
        load.wait_for(20, version="2")
    finally:
        answers = load.stop()

    assert load.failures == [], load.failures[:5]
    assert len(answers) > 200
    # Before the first switch only v1 answers; per client, once v2 answers, v1 never again
    # until the watched deployment; every request started after a switch returned gets v2.
    for versions in versions_by_thread(load, 0, t_deploy).values():
        assert set(versions) == {"1"}
    for versions in versions_by_thread(load, t_deploy, t_bad).values():
        assert versions == sorted(versions)  # "1"... then "2"...
    assert {a.version for a in answers if t_switched <= a.started < t_watch} == {"2"}
    assert {a.version for a in answers if a.started >= t_back} == {"2"}
    assert {a.version for a in answers if t_watch <= a.started < t_back} >= {"1", "2"}

    record = watched.value.deployment
    assert record.status == "rolled_back"
    assert record.model == "credit/1"
    assert "p99 latency" in (record.reason or "")
    assert "exceeds the limit 0.001 ms" in (record.reason or "")
    assert record.details["watch"]["requests"] >= 20
    assert record.instance is not None
    assert record.instance.pid is not None
    assert wait_gone(record.instance.pid)
    active = dws.deploy.active("load")
    assert active is not None
    assert active.id == v2.id
    pointer = json.loads((dws.root / ".modelcycle/deployments/load/current.json").read_text())
    assert pointer["model"] == "credit/2"
    assert pointer["url"] == v1.url
    events = [a for a, _ in audit_actions(dws, "deployment:load")]
    assert events == [
        "deployment.succeeded",
        "deployment.succeeded",
        "deployment.rolled_back",
        "deployment.succeeded",
        "deployment.rolled_back",
    ]
    assert dws.audit.verify().ok
    dws.deploy.stop("load")


def test_router_forwards_everything_and_keeps_its_port(dws: Workspace) -> None:
    dep = dws.deploy("credit/1", endpoint="front")
    url = dep.url or ""
    router = dws.deploy.router("front")
    assert router.url == url
    # Query strings, non-200 answers and their bodies pass through unchanged.
    with urllib.request.urlopen(f"{url}/v2/models/credit?x=1", timeout=10) as resp:
        assert resp.status == 200
        assert json.loads(resp.read())["name"] == "credit"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{url}/v2/models/nope/infer", data=b"{}", timeout=10)
    assert missing.value.code == 404
    # HEAD: headers only (the router's upstream client must not wait for a body).
    head = urllib.request.Request(f"{url}/v2/health/ready", method="HEAD")
    with urllib.request.urlopen(head, timeout=10) as resp:
        assert resp.status == 200
        assert resp.read() == b""
    # Request headers go through (the server echoes X-Request-ID), answer headers come back.
    request = urllib.request.Request(
        f"{url}/v2/models/credit/infer",
        data=BODY,
        headers={"Content-Type": "application/json", "X-Request-ID": "through-the-router"},
    )
    with urllib.request.urlopen(request, timeout=10) as proxied:
        assert proxied.status == 200
        assert proxied.headers["X-Model-Version"] == "1"
        assert proxied.headers["X-Request-ID"] == "through-the-router"
        assert len(json.loads(proxied.read())["outputs"][0]["data"]) == 2
    stats = router.stats(dep.backend_url or "")
    assert stats is not None
    assert stats.requests >= 3
    assert stats.errors == 0

    # The port is the endpoint's: another one is refused while it serves.
    with pytest.raises(Conflict, match="port stays fixed"):
        dws.deploy("credit/2", endpoint="front", port=free_port())

    # A router found dead comes back on the same port at the next deployment.
    pid = router.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert wait_gone(pid)
    # Refused, or reset when another program on this busy machine took the free port meanwhile:
    # either way the endpoint does not answer.
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"{url}/v2/health/ready", timeout=5)
    again = dws.deploy("credit/2", endpoint="front")
    assert again.url == url
    assert router.pid() != pid
    version = urllib.request.urlopen(f"{url}/v2/health/ready", timeout=10)
    assert version.status == 200

    # `deployments stop` closes the front door too; the port is kept for the next deploy.
    router_pid = router.pid()
    assert router_pid is not None
    stopped = run_cli("deployments", "stop", "front", cwd=dws.root)
    assert stopped.returncode == 0, stopped.stderr
    assert wait_gone(router_pid)
    assert not pid_alive(router_pid)
    later = dws.deploy("credit/1", endpoint="front")
    assert later.url == url
    dws.deploy.stop("front")


def _raw_headers(url: str, method: str, path: str, body: bytes | None = None) -> list[str]:
    """The answer's header lines as sent, names lower-cased (http.client keeps repeats)."""
    import http.client
    import urllib.parse

    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return [name.lower() for name, _ in resp.getheaders()]
    finally:
        conn.close()


def test_router_answers_carry_one_date_and_at_most_one_server_header(dws: Workspace) -> None:
    dep = dws.deploy("credit/1", endpoint="hdrs")
    url = dep.url or ""
    try:
        backend = _raw_headers(dep.backend_url or "", "GET", "/v2/health/ready")
        assert backend.count("date") == 1
        for method, path, body in (
            ("GET", "/v2/health/ready", None),
            ("POST", "/v2/models/credit/infer", BODY),
            ("GET", "/no/such/route", None),
        ):
            names = _raw_headers(url, method, path, body)
            assert names.count("date") == 1, (path, names)
            assert names.count("content-length") == 1, (path, names)
            # The backend's Server header (the scoring server sends none) goes through as is.
            assert names.count("server") == backend.count("server") <= 1, (path, names)
        # The router's own answer (its backend gone: 502) has its own single Date and Server.
        assert dep.instance is not None
        assert dep.instance.pid is not None
        os.kill(dep.instance.pid, signal.SIGKILL)
        assert wait_gone(dep.instance.pid)
        names = _raw_headers(url, "GET", "/v2/health/ready")
        assert names.count("date") == 1, names
        assert names.count("server") == 1, names
    finally:
        dws.deploy.stop("hdrs")

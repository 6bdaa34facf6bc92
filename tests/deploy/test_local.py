"""The local target end to end through the CLI, and blue/green with automatic rollback."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest
from _deploy_helpers import audit_actions, pid_alive, wait_gone

from _cli import run_cli
from modelcycle import Workspace
from modelcycle.deploy import DeploymentFailed


def infer(url: str, name: str = "credit") -> tuple[str, list[int]]:
    body = {
        "inputs": [
            {"name": "age", "datatype": "INT64", "shape": [2], "data": [30, 70]},
            {"name": "income", "datatype": "FP64", "shape": [2], "data": [40.0, 60.0]},
        ]
    }
    req = urllib.request.Request(
        f"{url}/v2/models/{name}/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.headers["X-Model-Version"], json.loads(r.read())["outputs"][0]["data"]


def test_local_deploy_list_show_logs_stop(dws: Workspace) -> None:
    cli = lambda *a: run_cli(*a, cwd=dws.root)  # noqa: E731
    done = cli("deploy", "credit/1", "--target", "local", "--endpoint", "cli-ep")
    assert done.returncode == 0, done.stderr
    assert "Deployed credit/1 to endpoint cli-ep" in done.stdout
    shown = json.loads(cli("deployments", "show", "cli-ep", "--json").stdout)
    assert shown["status"] == "active"
    assert shown["running"] is True
    assert shown["model"] == "credit/1"
    assert shown["target"] == "local"
    url, pid = shown["url"], shown["details"]["instance"]["pid"]
    backend = shown["backend_url"]
    assert url.startswith("http://127.0.0.1:")
    assert backend.startswith("http://127.0.0.1:")
    assert url != backend  # the endpoint's router in front of the version's server
    assert infer(url)[0] == "1"
    assert infer(backend)[0] == "1"
    # The pointer file names the same URLs; the pid files the same processes.
    folder = dws.root / ".modelcycle/deployments/cli-ep"
    pointer = json.loads((folder / "current.json").read_text())
    assert pointer["url"] == url
    assert pointer["backend_url"] == backend
    assert pointer["model"] == "credit/1"
    router_pid = int((folder / "router" / "server.pid").read_text())
    assert pid_alive(router_pid)
    text = cli("deployments", "show", "cli-ep").stdout
    assert f"url        {url} (stable: the endpoint's router)" in text
    assert f"backend    {backend}" in text
    assert (folder / "current").resolve() == (folder / shown["id"]).resolve()
    assert int((folder / shown["id"] / "server.pid").read_text()) == pid

    listed = cli("deployments", "list")
    assert "cli-ep" in listed.stdout
    assert "credit/1" in listed.stdout
    logs = cli("deployments", "logs", "cli-ep", "--tail", "50")
    assert "Serving credit/1 from bundle" in logs.stdout

    stopped = cli("deployments", "stop", "cli-ep")
    assert stopped.returncode == 0, stopped.stderr
    assert wait_gone(pid)
    assert wait_gone(router_pid)
    assert not (folder / "current.json").exists()
    assert json.loads(cli("deployments", "show", "cli-ep", "--json").stdout)["status"] == "stopped"
    again = cli("deployments", "stop", "cli-ep")
    assert again.returncode == 3  # NotFound: nothing active
    actions = [a for a, _ in audit_actions(dws, "deployment:cli-ep")]
    assert actions == ["deployment.succeeded", "deployment.stopped"]


def test_blue_green_switch_then_rollbacks(dws: Workspace) -> None:
    blue = dws.deploy("credit/1", endpoint="bg")
    assert blue.color == "blue"
    assert blue.instance is not None
    blue_pid = blue.instance.pid
    assert blue_pid is not None
    assert infer(blue.url or "")[0] == "1"

    # Success: v2 starts beside v1, passes the smoke test, takes over; v1 stops.
    green = dws.deploy.deploy("credit/2", endpoint="bg")
    assert green.color == "green"
    assert green.url == blue.url  # the endpoint's stable URL
    assert green.backend_url != blue.backend_url
    assert green.details["previous"] == blue.id
    smoke_version, _ = infer(green.url or "")
    assert smoke_version == "2"
    assert wait_gone(blue_pid)
    assert dws.deploy.get(blue.id).status == "replaced"
    pointer = json.loads((dws.root / ".modelcycle/deployments/bg/current.json").read_text())
    assert pointer["url"] == green.url
    assert pointer["backend_url"] == green.backend_url
    assert pointer["model"] == "credit/2"
    assert green.instance is not None
    assert green.instance.pid is not None
    live_pid = green.instance.pid

    # Rollback 1: v3's signature names a column its model never saw: it loads and becomes
    # ready, but the smoke request fails. v2 keeps serving, untouched.
    with pytest.raises(DeploymentFailed, match="smoke test failed") as failed:
        dws.deploy.deploy("credit/3", endpoint="bg")
    record = failed.value.deployment
    assert record.status == "rolled_back"
    assert record.model == "credit/3"
    assert "smoke test failed" in (record.reason or "")
    assert record.details["smoke"]["status"] == 500
    assert record.instance is not None
    assert record.instance.pid is not None
    assert wait_gone(record.instance.pid)
    active = dws.deploy.active("bg")
    assert active is not None
    assert active.id == green.id
    assert pid_alive(live_pid)
    assert infer(green.url or "")[0] == "2"

    # Rollback 2, through the CLI: a pickle without --trust makes the new server exit at start.
    bad = run_cli("deploy", "pickled/1", "--endpoint", "bg", cwd=dws.root)
    assert bad.returncode == 1
    assert "rolled back" in bad.stderr
    assert "exited before it was ready" in bad.stderr
    assert "credit/2 keeps serving" in bad.stderr
    assert infer(green.url or "")[0] == "2"
    assert dws.deploy.active("bg").id == green.id  # type: ignore[union-attr]
    history = dws.deploy.list("bg", all=True)
    assert [h.status for h in history] == ["replaced", "active", "rolled_back", "rolled_back"]
    events = audit_actions(dws, "deployment:bg")
    assert [a for a, _ in events] == [
        "deployment.succeeded",
        "deployment.succeeded",
        "deployment.rolled_back",
        "deployment.rolled_back",
    ]
    assert events[2][1]["kept"] == green.id
    assert "smoke test" in str(events[2][1]["reason"])
    assert dws.audit.verify().ok
    dws.deploy.stop("bg")
    assert wait_gone(live_pid)


def test_first_deploy_that_fails_is_recorded_as_failed(dws: Workspace) -> None:
    with pytest.raises(DeploymentFailed, match="exited before it was ready") as failed:
        dws.deploy("pickled/1", endpoint="never")
    assert failed.value.deployment.status == "failed"
    assert dws.deploy.active("never") is None
    assert [a for a, _ in audit_actions(dws, "deployment:never")] == ["deployment.failed"]
    log = dws.deploy.logs("never")
    assert "pickle" in log
    assert not os.path.exists(dws.root / ".modelcycle/deployments/never/current.json")
    assert not Path(dws.root / ".modelcycle/deployments/never/current").exists()
    # Nothing serves: the router started for it is gone again.
    assert not dws.deploy.router("never").is_running()

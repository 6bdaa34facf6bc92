"""`deployments rollback` on demand, and the watch after a switch (passing, and going back)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _deploy_helpers import audit_actions, frame, wait_gone
from _load import BODY, Load
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from _cli import run_cli
from modelcycle import Workspace
from modelcycle.deploy import DeploymentFailed
from modelcycle.errors import Conflict, NotFound

NEGATIVE_INCOME = BODY.replace(b"[40.0, 60.0]", b"[-40.0, 60.0]")


def test_rollback_on_demand_goes_back_and_says_why_it_cannot(dws: Workspace) -> None:
    with pytest.raises(NotFound, match="no active deployment"):
        dws.deploy.rollback("back")
    v1 = dws.deploy("credit/1", endpoint="back")
    with pytest.raises(Conflict, match="nothing to go back to"):
        dws.deploy.rollback("back")
    v2 = dws.deploy("credit/2", endpoint="back")
    load = Load(v1.url or "", threads=2).start()
    try:
        load.wait_for(10, version="2")
        back = dws.deploy.rollback("back")
        load.wait_for(10, version="1")
    finally:
        load.stop()
    assert load.failures == []
    assert back.model == "credit/1"
    assert back.status == "active"
    assert back.url == v1.url
    assert back.reason == "rollback requested"
    assert back.details["rollback_of"] == v2.id
    assert dws.deploy.get(v2.id).status == "replaced"
    assert v2.instance is not None
    assert v2.instance.pid is not None
    assert wait_gone(v2.instance.pid)

    # Through the CLI: back again to credit/2, the version served before the rollback.
    done = run_cli("deployments", "rollback", "back", cwd=dws.root)
    assert done.returncode == 0, done.stderr
    assert "Rolled back endpoint back from credit/1 to credit/2" in done.stdout
    assert dws.deploy.active("back").model == "credit/2"  # type: ignore[union-attr]
    events = audit_actions(dws, "deployment:back")
    assert [a for a, _ in events] == [
        "deployment.succeeded",
        "deployment.succeeded",
        "deployment.rolled_back_on_demand",
        "deployment.rolled_back_on_demand",
    ]
    assert events[2][1]["reason"] == "rollback requested"
    dws.deploy.stop("back")
    missing = run_cli("deployments", "rollback", "back", cwd=dws.root)
    assert missing.returncode == 3
    assert "no active deployment" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_watch_passes_then_blue_stops(dws: Workspace) -> None:
    v1 = dws.deploy("credit/1", endpoint="watched")
    assert v1.instance is not None
    assert v1.instance.pid is not None
    load = Load(v1.url or "", threads=2, pause=0.01).start()
    try:
        done = run_cli("deploy", "credit/2", "--endpoint", "watched", "--watch", "3s", cwd=dws.root)
    finally:
        load.stop()
    assert done.returncode == 0, done.stderr
    assert "Watch passed" in done.stdout
    assert load.failures == []
    assert wait_gone(v1.instance.pid)
    active = dws.deploy.active("watched")
    assert active is not None
    assert active.model == "credit/2"
    watch = active.details["watch"]
    assert watch["ok"] is True
    assert watch["requests"] > 0
    assert watch["limits"] == {"seconds": 3.0, "max_error_rate": 0.05, "max_p99_ms": 500.0}
    actions = [a for a, _ in audit_actions(dws, "deployment:watched")]
    assert actions[-2:] == ["deployment.succeeded", "deployment.watch_passed"]
    bad = run_cli("deploy", "credit/1", "--endpoint", "watched", "--watch", "soon", cwd=dws.root)
    assert bad.returncode == 2
    assert "--watch" in bad.stderr
    dws.deploy.stop("watched")


def test_watch_goes_back_when_the_new_version_answers_errors(dws: Workspace) -> None:
    # Passes the smoke test (positive incomes), answers 500 on a negative income: log() makes
    # a NaN the model cannot take.
    x, y = frame()
    fragile = make_pipeline(FunctionTransformer(np.log), LogisticRegression()).fit(x, y)
    dws.registry.register(fragile, "credit", flavor="pickle", trust=True, input_example=x.head(5))
    fragile_ref = f"credit/{dws.registry.get('credit@latest').version}"
    v1 = dws.deploy("credit/1", endpoint="errs")
    assert v1.instance is not None
    blue_pid = v1.instance.pid
    load = Load(v1.url or "", threads=2, body=NEGATIVE_INCOME, pause=0.01).start()
    try:
        load.wait_for(10, version="1")
        # Deployed from an alias that names it: the watch's rollback takes the alias back too.
        dws.registry.set_alias("credit", "canary", int(fragile_ref.split("/")[1]))
        with pytest.raises(DeploymentFailed, match="error rate") as failed:
            dws.deploy("credit@canary", endpoint="errs", trust=True, watch=30, max_error_rate=0.1)
        load.wait_for(10, version="1")
    finally:
        answers = load.stop()
    record = failed.value.deployment
    assert record.status == "rolled_back"
    assert "watch" in (record.reason or "")
    assert "exceeds the limit 0.1" in (record.reason or "")
    assert record.details["watch"]["errors"] > 0
    assert "credit/1 serves endpoint 'errs' again, and credit@canary names it again" in str(
        failed.value
    )
    assert dws.registry.get("credit@canary").version == 1
    moved = [e for e in dws.audit.events() if e.action == "model.alias_moved"][-1]
    assert moved.subject == "model:credit/1"
    assert moved.payload["reason"] == "rollback"
    assert moved.payload["endpoint"] == "errs"
    assert moved.payload["rolled_back"] == record.id
    assert record.details["alias_moved"]["alias"] == "credit@canary"
    # The only failures clients saw are the new version's own 500s, during the watch.
    assert {a.status for a in answers if a.version == "1"} == {200}
    assert all(a.status == 500 for a in load.failures)
    assert all(a.error is None for a in answers)
    active = dws.deploy.active("errs")
    assert active is not None
    assert active.id == v1.id
    assert blue_pid is not None
    assert not wait_gone(blue_pid, timeout=0.5)  # blue never stopped
    assert record.instance is not None
    assert record.instance.pid is not None
    assert wait_gone(record.instance.pid)
    pointer = json.loads((dws.root / ".modelcycle/deployments/errs/current.json").read_text())
    assert pointer["model"] == "credit/1"
    events = audit_actions(dws, "deployment:errs")
    assert [a for a, _ in events] == [
        "deployment.succeeded",
        "deployment.succeeded",
        "deployment.rolled_back",
    ]
    assert events[2][1]["watch"]["errors"] > 0
    shown = run_cli("deployments", "show", "errs", cwd=dws.root).stdout
    assert "model      credit/1" in shown
    dws.deploy.stop("errs")


def _alias_moves(ws: Workspace) -> list[dict[str, object]]:
    return [e.payload for e in ws.audit.events() if e.action == "model.alias_moved"]


def test_rollback_carries_the_alias_it_was_deployed_from_back(dws: Workspace) -> None:
    """Decision 0004: a deployment made from NAME@ALIAS, rolled back while the alias still
    names its version, moves the alias back with the traffic (audited, reason rollback)."""
    cli = lambda *a: run_cli(*a, cwd=dws.root)  # noqa: E731
    dws.registry.set_alias("credit", "champion", 1)
    dws.deploy("credit@champion", endpoint="champ")
    promoted = cli(
        "models", "promote", "credit/2", "--to", "champion", "--force", "--reason", "a test"
    )
    assert promoted.returncode == 0, promoted.stderr
    dws.deploy("credit@champion", endpoint="champ")
    moves_before = len(_alias_moves(dws))

    back = cli("deployments", "rollback", "champ")
    assert back.returncode == 0, back.stderr
    assert "credit@champion moved back to credit/1 (was credit/2; reason: rollback)" in back.stdout
    # The alias, models show and deployments show all say the same thing.
    assert dws.registry.get("credit@champion").version == 1
    shown = json.loads(cli("models", "show", "credit@champion", "--json").stdout)
    assert shown["model"] == "credit/1"
    assert [d["endpoint"] for d in shown["deployments"]] == ["champ"]
    assert "deployed: nowhere" in cli("models", "show", "credit/2").stdout
    endpoint = cli("deployments", "show", "champ").stdout
    assert "model      credit/1" in endpoint
    assert "ref        credit@champion" in endpoint
    assert "alias      credit@champion moved back to credit/1" in endpoint
    # One audited alias move, with the reason and the endpoint.
    active = dws.deploy.active("champ")
    assert active is not None
    assert active.details["ref"] == "credit@champion"  # a next rollback follows it again
    assert _alias_moves(dws)[moves_before:] == [
        {
            "alias": "champion",
            "from": 2,
            "to": 1,
            "reason": "rollback",
            "endpoint": "champ",
            "deployment": active.id,
            "rolled_back": active.details["rollback_of"],
        }
    ]
    assert dws.audit.verify().ok
    dws.deploy.stop("champ")


def test_rollback_of_an_explicit_version_moves_no_alias(dws: Workspace) -> None:
    dws.deploy("credit/1", endpoint="pinned")
    dws.registry.set_alias("credit", "pinned-alias", 2)
    dws.deploy("credit/2", endpoint="pinned")
    moves_before = len(_alias_moves(dws))
    plain = run_cli("deployments", "rollback", "pinned", cwd=dws.root)
    assert plain.returncode == 0, plain.stderr
    assert "moved back" not in plain.stdout
    assert dws.deploy.active("pinned").model == "credit/1"  # type: ignore[union-attr]
    assert dws.registry.get("credit@pinned-alias").version == 2
    assert len(_alias_moves(dws)) == moves_before
    dws.deploy.stop("pinned")

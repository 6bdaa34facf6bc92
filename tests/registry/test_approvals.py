"""Promotion requests under a [promotion.*] policy, on SQLite and PostgreSQL: distinct approvals,
separation of duties, rejection, cancel, expiry, and two racing approvals."""

from __future__ import annotations

import threading
import time
from typing import Any

import pandas as pd
import pytest
from _registry_helpers import FEATURES, make_frame

from modelcycle import Workspace
from modelcycle.errors import Conflict, Forbidden, InvalidInput, ModelcycleError
from modelcycle.store import AuditFilter


def _with_policy(ws: Workspace, policy: str) -> Workspace:
    """The workspace reopened with ``policy`` appended to its modelcycle.toml."""
    config = ws.root / "modelcycle.toml"
    config.write_text(config.read_text(encoding="utf-8") + "\n" + policy, encoding="utf-8")
    return Workspace(ws.root)


def _register(ws: Workspace, model: Any, frame: pd.DataFrame, **kw: Any) -> int:
    mv = ws.registry.register(model, "credit", input_example=frame[FEATURES].head(20), **kw)
    return int(mv.version)


def _actions(ws: Workspace, prefix: str) -> list[str]:
    return [e.action for e in ws.audit.events() if e.action.startswith(prefix)]


def test_two_distinct_approvals_move_the_alias_in_the_last_approvals_transaction(
    workspace: Workspace, frame: pd.DataFrame, pipeline: Any, weak_pipeline: Any
) -> None:
    _register(workspace, weak_pipeline, frame)
    workspace.registry.promote("credit/1")  # no policy yet: moves at once
    holdout = workspace.datasets.add("holdout", make_frame(n=200, seed=1)).ref
    _register(workspace, pipeline, frame, tags={"holdout": holdout, "target": "label"})
    ws = _with_policy(
        workspace,
        '[promotion.champion]\napprovals = 2\napprovers = ["alice", "bob", "carol"]\n'
        'expires_after = "72h"\n',
    )
    result = ws.registry.promote("credit/2", to="champion")
    assert (result.moved, result.request is not None) == (False, True)
    assert result.candidate_score is not None
    assert result.champion_score is not None
    assert ws.registry.get("credit@champion").version == 1
    again = ws.registry.promote("credit/2", to="champion")  # the same request, not a second
    assert again.request == result.request
    assert len(ws.approvals.list(pending=True)) == 1

    alice, bob = ws.as_actor("alice"), ws.as_actor("bob")
    first = alice.approvals.approve(str(result.request), comment="figures fine")
    assert (first.state, first.approved_by) == ("pending", ["alice"])
    with pytest.raises(Conflict, match="already approved"):
        alice.approvals.approve(str(result.request))
    assert ws.approvals.get(str(result.request)).approved_by == ["alice"]
    assert ws.registry.get("credit@champion").version == 1

    done = bob.approvals.approve(str(result.request)[:8])
    assert (done.state, done.decided_by, done.approved_by) == ("approved", "bob", ["alice", "bob"])
    assert ws.registry.get("credit@champion").version == 2
    events = ws.audit.events()
    tail = [e.action for e in events[-3:]]
    assert tail == ["promotion.approved", "model.promoted", "model.alias_moved"]
    assert len({e.seq for e in events[-3:]}) == 3
    moved = events[-1].payload
    assert (moved["from"], moved["to"], moved["approved_by"]) == (1, 2, ["alice", "bob"])
    assert moved["request"] == result.request
    requested = ws.audit.events(AuditFilter(action="promotion.requested"))
    assert [(e.actor, e.payload["gate"]["metric"]) for e in requested] == [("tester", "roc_auc")]
    assert ws.audit.verify().ok
    with pytest.raises(Conflict, match="already approved"):
        ws.as_actor("carol").approvals.approve(str(result.request))


def test_requester_author_and_outsiders_are_refused(
    workspace: Workspace, frame: pd.DataFrame, pipeline: Any
) -> None:
    ws = _with_policy(
        workspace,
        '[promotion.champion]\napprovals = 1\napprovers = ["alice", "dave", "tester"]\n',
    )
    _register(ws.as_actor("dave"), pipeline, frame)
    request = str(ws.registry.promote("credit/1", force=True, reason="hotfix").request)
    assert ws.approvals.get(request).reason == "hotfix"  # force skips the gate, not approval
    with pytest.raises(Forbidden, match=r"promotion\.champion\.separation_of_duties.*requested"):
        ws.approvals.approve(request)
    with pytest.raises(Forbidden, match=r"separation_of_duties.*registered credit/1"):
        ws.as_actor("dave").approvals.approve(request)
    with pytest.raises(Forbidden, match=r"promotion\.champion\.approvers: 'mallory'"):
        ws.as_actor("mallory").approvals.approve(request)
    with pytest.raises(Forbidden, match="may not reject"):
        ws.as_actor("mallory").approvals.reject(request, comment="no")
    with pytest.raises(InvalidInput, match="comment"):
        ws.as_actor("alice").approvals.reject(request, comment="  ")
    with pytest.raises(Forbidden, match="needs 1 approval"):
        ws.registry.set_alias("credit", "champion", 1)  # no way around the request
    rejected = ws.as_actor("alice").approvals.reject(request, comment="not on a Friday")
    assert (rejected.state, rejected.comment) == ("rejected", "not on a Friday")
    with pytest.raises(Conflict, match="already rejected by alice"):
        ws.as_actor("alice").approvals.approve(request)
    with pytest.raises(ModelcycleError):
        ws.registry.get("credit@champion")

    second = str(ws.registry.promote("credit/1").request)
    with pytest.raises(Forbidden, match="requester"):
        ws.as_actor("mallory").approvals.cancel(second)
    assert ws.approvals.cancel(second).state == "cancelled"
    assert _actions(ws, "promotion.") == [
        "promotion.requested",
        "promotion.rejected",
        "promotion.requested",
        "promotion.cancelled",
    ]
    assert not _actions(ws, "model.alias_moved")


def test_a_pending_request_expires_and_moves_nothing(
    workspace: Workspace, frame: pd.DataFrame, pipeline: Any
) -> None:
    ws = _with_policy(workspace, '[promotion."champ*"]\napprovals = 1\nexpires_after = "1s"\n')
    _register(ws, pipeline, frame)
    request = str(ws.registry.promote("credit/1", to="champion").request)
    assert ws.approvals.get(request).expires_at is not None
    time.sleep(1.1)
    ws.automations.worker(poll_seconds=0.01).run_once()  # the worker sweeps: nobody looked
    assert len(ws.audit.events(AuditFilter(action="promotion.expired"))) == 1
    assert ws.approvals.list(pending=True) == []
    with pytest.raises(Conflict, match="already expired"):
        ws.as_actor("alice").approvals.approve(request)
    expired = ws.audit.events(AuditFilter(action="promotion.expired"))
    assert [(e.actor, e.payload["request"]) for e in expired] == [("modelcycle", request)]
    assert not _actions(ws, "model.alias_moved")


def test_two_racing_approvals_move_the_alias_exactly_once(
    workspace: Workspace, frame: pd.DataFrame, pipeline: Any
) -> None:
    ws = _with_policy(workspace, "[promotion.champion]\napprovals = 1\n")
    _register(ws, pipeline, frame)
    request = str(ws.registry.promote("credit/1").request)
    # Separate workspaces: separate engines and connections, as two processes would have.
    approvers = [Workspace(ws.root).as_actor(name) for name in ("alice", "bob", "carol")]
    barrier = threading.Barrier(len(approvers))
    outcomes: list[str] = []

    def approve(who: Workspace) -> None:
        barrier.wait()
        try:
            who.approvals.approve(request)
            outcomes.append("approved")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=approve, args=(w,)) for w in approvers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["approved", "conflict", "conflict"]
    assert len(ws.audit.events(AuditFilter(action="model.alias_moved"))) == 1
    assert len(ws.approvals.get(request).approvals) == 1
    assert ws.registry.get("credit@champion").version == 1


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("[promotion.champion]\napprovers = \"alice\"\n",
         "promotion.champion.approvers: expected a list of identity names"),
        ("[promotion.champion]\nexpires_after = \"3 days\"\n",
         "promotion.champion.expires_after: expected a duration"),
        ("[promotion.champion]\napprovals = -1\n",
         "promotion.champion.approvals: expected a whole number >= 0"),
        ("[promotion.champion]\napprover = [\"alice\"]\n",
         "promotion.champion.approver: unknown key; expected one of approvals, approvers"),
        ("promotion = 3\n", "promotion: expected tables such as [promotion.champion]"),
    ],
)  # fmt: skip
def test_a_bad_policy_names_its_key(policy: str, message: str) -> None:
    import tomllib

    from modelcycle.registry import load_promotion_policies

    with pytest.raises(InvalidInput) as info:
        load_promotion_policies(tomllib.loads(policy))
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)

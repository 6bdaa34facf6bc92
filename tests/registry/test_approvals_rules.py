"""A rule-driven promotion under a policy (both backends, worker in-process): the promote job
succeeds with status awaiting_approval, nothing follows the alias until the approval lands,
then the rule that follows alias moves (the demo's deploy rule; a note here, to stay fast)
fires once."""

from __future__ import annotations

from typing import Any

import pandas as pd
from _registry_helpers import FEATURES

from modelcycle import Workspace

CONFIG = """
[promotion.champion]
approvals = 1

[[rules]]
name = "promote-new-version"
on = "model.version_registered"
where = { subject_name = "credit" }
do = "promote"
with = { ref = "{subject_ref}", to = "champion" }

[[rules]]
name = "follow-champion"
on = "model.alias_moved"
where = { subject_name = "credit", alias = "champion" }
do = "note"
with = { text = "deploy {subject_ref}", subject = "deployed" }
"""


def _drain(ws: Workspace) -> list[Any]:
    worker = ws.automations.worker(poll_seconds=0.01)
    jobs = []
    while (job := worker.run_once()) is not None:
        jobs.append(job)
    return jobs


def test_rule_promotion_waits_and_what_follows_the_alias_fires_on_approval(
    workspace: Workspace, frame: pd.DataFrame, pipeline: Any
) -> None:
    config = workspace.root / "modelcycle.toml"
    config.write_text(config.read_text(encoding="utf-8") + CONFIG, encoding="utf-8")
    ws = Workspace(workspace.root)
    ws.registry.register(pipeline, "credit", input_example=frame[FEATURES].head(20))
    (promote,) = _drain(ws)
    assert (promote.kind, promote.state) == ("promote", "succeeded")
    assert promote.result["status"] == "awaiting_approval"
    request = ws.approvals.get(promote.result["request"])
    assert (request.origin, request.state) == ("rule:promote-new-version", "pending")
    assert _drain(ws) == []  # nothing moved: nothing follows
    assert [e for e in ws.audit.events() if e.subject == "deployed"] == []

    ws.as_actor("alice").approvals.approve(request.id)
    (follow,) = _drain(ws)
    assert (follow.rule, follow.state) == ("follow-champion", "succeeded")
    notes = [e.payload["text"] for e in ws.audit.events() if e.subject == "deployed"]
    assert notes == [f"[job {follow.id}] deploy credit/1"]
    assert ws.registry.get("credit@champion").version == 1
    ws.close()

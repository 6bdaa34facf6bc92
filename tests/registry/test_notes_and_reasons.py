"""Issue 13 item 14: `models annotate` (notes kept on a version, audited, shown) and
`models promote --force --reason` (the reason in the audit events and the alias history)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from _registry_helpers import FEATURES

from modelcycle import Workspace
from modelcycle.store import AuditFilter


def _audit(cli: Any, action: str | None = None) -> list[dict[str, Any]]:
    out = cli("audit", "log", *(("--action", action) if action else ()), "--json",
              check=True).stdout  # fmt: skip
    return [json.loads(line) for line in out.splitlines()]


def test_annotate_keeps_several_notes_with_author_and_time(
    cli: Any, workspace: Workspace, frame: pd.DataFrame, pipeline: Any
) -> None:
    workspace.registry.register(pipeline, "credit", input_example=frame[FEATURES].head(20))
    workspace.registry.set_alias("credit", "champion", 1)
    first = cli("models", "annotate", "credit/1", "--note", "  retrained after the Q3 fix ",
                check=True)  # fmt: skip
    assert "credit/1" in first.stdout
    # An alias names the version it points at now; the note stays on that version.
    cli("models", "annotate", "credit@champion", "--note", "approved by risk", check=True,
        env={"MODELCYCLE_ACTOR": "bob"})  # fmt: skip

    events = _audit(cli, "model.annotated")
    assert [(e["subject"], e["actor"], e["payload"]["note"]) for e in events] == [
        ("model:credit/1", "tester", "retrained after the Q3 fix"),
        ("model:credit/1", "bob", "approved by risk"),
    ]
    assert events[0]["payload"]["id"] != events[1]["payload"]["id"]

    shown = json.loads(cli("models", "show", "credit/1", "--json", check=True).stdout)
    notes = shown["notes"]
    assert [(n["note"], n["author"]) for n in notes] == [
        ("retrained after the Q3 fix", "tester"),
        ("approved by risk", "bob"),
    ]
    assert all(n["at"].endswith("Z") for n in notes)
    human = cli("models", "show", "credit/1", check=True).stdout
    assert "retrained after the Q3 fix" in human
    assert "approved by risk" in human
    assert "bob" in human

    blank = cli("models", "annotate", "credit/1", "--note", "   ")
    assert blank.returncode == 2
    assert "note" in blank.stderr
    # A refused note leaves nothing behind.
    assert len(workspace.audit.events(AuditFilter(action="model.annotated"))) == 2
    assert len(workspace.registry.notes("credit/1")) == 2


def test_forced_promotion_needs_and_records_a_reason(
    cli: Any, workspace: Workspace, frame: pd.DataFrame, pipeline: Any, weak_pipeline: Any
) -> None:
    for model in (pipeline, weak_pipeline):
        workspace.registry.register(model, "credit", input_example=frame[FEATURES].head(20))
    cli("models", "promote", "credit/1", check=True)

    refused = cli("models", "promote", "credit/2", "--force")
    assert refused.returncode == 2
    assert "--reason" in refused.stderr
    assert workspace.registry.get("credit@champion").version == 1  # nothing moved

    reason = "v1 leaks the label (ticket RISK-42)"
    done = cli("models", "promote", "credit/2", "--force", "--reason", reason, check=True)
    assert "forced" in done.stdout
    assert workspace.registry.get("credit@champion").version == 2

    log = _audit(cli)
    promoted = [e for e in log if e["action"] == "model.promoted"][-1]["payload"]
    assert (promoted["forced"], promoted["reason"]) == (True, reason)
    moved = [e for e in log if e["action"] == "model.alias_moved"][-1]["payload"]
    assert moved == {"alias": "champion", "from": 1, "to": 2, "by": "promotion",
                     "forced": True, "reason": reason}  # fmt: skip

    # The SDK (and so the API and automations) may force without a reason: recorded as none.
    workspace.registry.promote("credit/1", force=True)
    last = workspace.audit.events(AuditFilter(action="model.promoted"))[-1]
    assert (last.payload["forced"], last.payload["reason"]) == (True, None)

    history = [
        json.loads(line)
        for line in cli("models", "alias", "history", "credit", "--alias", "champion", "--json",
                        check=True).stdout.splitlines()
    ]  # fmt: skip
    assert [(h["from"], h["to"], h["forced"], h["reason"]) for h in history] == [
        (None, 1, False, None),
        (1, 2, True, reason),
        (2, 1, True, None),
    ]
    table = cli("models", "alias", "history", "credit", check=True).stdout
    assert "RISK-42" in table
    assert "none given" in table
    assert cli("models", "alias", "history", "nobody").returncode != 0

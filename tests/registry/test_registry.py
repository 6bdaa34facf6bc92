"""Versions, references, aliases, archive and lineage, including two processes at once."""

from __future__ import annotations

import itertools
from typing import Any

import pandas as pd
import pytest
from _registry_helpers import NUMERIC, run_script, wait_all

from modelcycle import Workspace
from modelcycle.errors import Conflict, InvalidInput, NotFound
from modelcycle.registry import ModelRegistry, parse_model_ref
from modelcycle.store import AuditFilter


def _register(
    ws: Workspace, model: Any, frame: pd.DataFrame, name: str = "churn", **kw: Any
) -> Any:
    return ws.registry.register(model, name, input_example=frame[NUMERIC].head(5), **kw)


def test_references_parse() -> None:
    assert parse_model_ref("m/3").version == 3
    assert parse_model_ref("m@champion").alias == "champion"
    for bad in ("m", "m/0", "m/x", "../m/1", "m@a/b"):
        with pytest.raises(InvalidInput):
            parse_model_ref(bad)


def test_constructor_does_no_io(workspace: Workspace) -> None:
    # A store at an unreachable URL is fine until used.
    from modelcycle.store import MetadataStore, open_artifact_store

    reg = ModelRegistry(
        MetadataStore("postgresql+psycopg://nobody@127.0.0.1:1/none"),
        open_artifact_store("memory://x"),
        "someone",
    )
    assert isinstance(reg, ModelRegistry)


def test_versions_count_up_per_name_and_are_audited(
    workspace: Workspace, frame: pd.DataFrame, hgb: Any
) -> None:
    reg = workspace.registry
    assert [_register(workspace, hgb, frame).version for _ in range(3)] == [1, 2, 3]
    assert _register(workspace, hgb, frame, name="other").version == 1
    assert [v.ref for v in reg.list("churn")] == ["churn/1", "churn/2", "churn/3"]
    assert [v.ref for v in reg.list()] == ["churn/1", "churn/2", "churn/3", "other/1"]
    event = workspace.audit.events(AuditFilter(subject="model:churn/2"))[0]
    assert event.action == "model.version_registered"
    assert event.actor == "tester"
    assert (event.payload["version"], event.payload["flavor"]) == (2, "skops")
    assert workspace.audit.verify().ok


def test_get_by_version_alias_and_latest(
    workspace: Workspace, frame: pd.DataFrame, hgb: Any
) -> None:
    reg = workspace.registry
    for _ in range(3):
        _register(workspace, hgb, frame, datasets=[], metrics={"roc_auc": 0.9}, run_id="r1")
    reg.set_alias("churn", "champion", 2)
    got = reg.get("churn@champion")
    assert (got.version, got.aliases, got.metrics, got.run_id) == (
        2,
        ("champion",),
        {"roc_auc": 0.9},
        "r1",
    )
    assert reg.get("churn/2") == got
    assert reg.get("churn@latest").version == 3
    reg.archive("churn/3")
    assert reg.get("churn@latest").version == 2  # latest skips archived versions
    with pytest.raises(NotFound, match="no version 9"):
        reg.get("churn/9")
    with pytest.raises(NotFound, match="no alias 'nope'"):
        reg.get("churn@nope")
    with pytest.raises(NotFound, match="no model named 'ghost'"):
        reg.get("ghost/1")


def test_alias_moves_and_deletes_are_audited_with_old_and_new(
    workspace: Workspace, frame: pd.DataFrame, hgb: Any
) -> None:
    reg = workspace.registry
    for _ in range(2):
        _register(workspace, hgb, frame)
    reg.set_alias("churn", "champion", 1)
    reg.set_alias("churn", "champion", 2)
    assert reg.get("churn/1").aliases == ()
    assert reg.delete_alias("churn", "champion") == 2
    moves = workspace.audit.events(AuditFilter(action="model.alias_moved"))
    assert [(e.subject, e.payload["from"], e.payload["to"]) for e in moves] == [
        ("model:churn/1", None, 1),
        ("model:churn/2", 1, 2),
    ]
    deleted = workspace.audit.events(AuditFilter(action="model.alias_deleted"))
    assert [(e.subject, e.payload["from"]) for e in deleted] == [("model:churn/2", 2)]
    with pytest.raises(NotFound):
        reg.delete_alias("churn", "champion")
    with pytest.raises(InvalidInput, match="latest"):
        reg.set_alias("churn", "latest", 1)
    with pytest.raises(NotFound):
        reg.set_alias("churn", "champion", 7)


def test_archived_version_cannot_take_an_alias(
    workspace: Workspace, frame: pd.DataFrame, hgb: Any
) -> None:
    reg = workspace.registry
    for _ in range(2):
        _register(workspace, hgb, frame)
    reg.set_alias("churn", "champion", 2)
    with pytest.raises(Conflict, match="champion"):
        reg.archive("churn/2")  # still the champion
    archived = reg.archive("churn/1")
    assert archived.status == "archived"
    with pytest.raises(Conflict, match="archived"):
        reg.set_alias("churn", "challenger", 1)
    with pytest.raises(Conflict, match="already archived"):
        reg.archive("churn/1")
    assert reg.get("churn@champion").version == 2
    events = workspace.audit.events(AuditFilter(action="model.version_archived"))
    assert [e.subject for e in events] == ["model:churn/1"]


def test_lineage_shows_run_data_code_and_every_event(
    workspace: Workspace, frame: pd.DataFrame, hgb: Any
) -> None:
    reg = workspace.registry
    data = workspace.datasets.add("loans", frame)
    mv = _register(
        workspace,
        hgb,
        frame,
        datasets=["loans@latest"],
        run_id="run-42",
        metrics={"roc_auc": 0.88},
        tags={"code_version": "abc1234"},
    )
    assert mv.datasets == [f"loans@{data.version}"]  # pinned to the exact version
    reg.set_alias("churn", "champion", 1)
    reg.delete_alias("churn", "champion")
    lineage = reg.lineage("churn/1")
    assert (lineage.run_id, lineage.code_version, lineage.datasets) == (
        "run-42",
        "abc1234",
        ["loans@1"],
    )
    assert lineage.metrics == {"roc_auc": 0.88}
    assert [e.action for e in lineage.events] == [
        "model.version_registered",
        "model.alias_moved",
        "model.alias_deleted",
    ]
    assert lineage.as_dict()["signature"]["inputs"][0]["name"] == "income"


def test_bad_inputs_name_the_field(workspace: Workspace, frame: pd.DataFrame, hgb: Any) -> None:
    reg = workspace.registry
    with pytest.raises(InvalidInput, match="name"):
        reg.register(hgb, "../etc", input_example=frame[NUMERIC].head(2))
    with pytest.raises(InvalidInput, match="input_example"):
        reg.register(hgb, "churn")
    with pytest.raises(InvalidInput, match=r"metrics\.auc"):
        reg.register(hgb, "churn", input_example=frame[NUMERIC].head(2), metrics={"auc": "high"})
    with pytest.raises(InvalidInput, match="input_example"):
        reg.register(hgb, "churn", input_example=frame[["income"]].head(2))
    with pytest.raises(NotFound, match="loans"):
        reg.register(hgb, "churn", input_example=frame[NUMERIC].head(2), datasets=["loans@1"])
    assert reg.list() == []


_REGISTER_SCRIPT = """
import sys
import numpy as np
from sklearn.linear_model import LinearRegression
from modelcycle import Workspace

X = np.arange(20.0).reshape(10, 2)
model = LinearRegression().fit(X, X[:, 0])
with Workspace() as ws:
    for _ in range(int(sys.argv[1])):
        print(ws.registry.register(model, "shared", input_example=X).version)
"""

_ALIAS_SCRIPT = """
import sys
from modelcycle import Workspace

start, count = int(sys.argv[1]), int(sys.argv[2])
with Workspace() as ws:
    for i in range(count):
        ws.registry.set_alias("shared", "champion", 1 + (start + i) % 3)
"""


def test_two_processes_register_and_move_aliases_consistently(workspace: Workspace) -> None:
    procs = [run_script(_REGISTER_SCRIPT, "4", cwd=workspace.root) for _ in range(2)]
    wait_all(procs)
    versions = [v.version for v in workspace.registry.list("shared")]
    assert versions == list(range(1, 9))  # no number taken twice, none skipped

    per_process = 15
    procs = [
        run_script(_ALIAS_SCRIPT, str(s), str(per_process), cwd=workspace.root) for s in (0, 1)
    ]
    wait_all(procs)
    moves = workspace.audit.events(AuditFilter(action="model.alias_moved"))
    assert len(moves) == 2 * per_process
    # Every move saw the one before it: no lost update, the log tells the alias's full story.
    assert moves[0].payload["from"] is None
    for before, after in itertools.pairwise(moves):
        assert after.payload["from"] == before.payload["to"]
    assert workspace.registry.get("shared@champion").version == moves[-1].payload["to"]
    report = workspace.audit.verify()
    assert report.ok, report.problem

"""Promotion gates: both models scored on the same holdout version, figures stored and audited."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from _registry_helpers import FEATURES, NUMERIC, make_frame
from sklearn.dummy import DummyRegressor

from modelcycle import Workspace
from modelcycle.errors import Conflict, InvalidInput
from modelcycle.registry import PromotionRefused
from modelcycle.store import AuditFilter


@pytest.fixture
def holdout(workspace: Workspace) -> str:
    version = workspace.datasets.add("holdout", make_frame(n=200, seed=1))
    return version.ref


def _credit(ws: Workspace, model: Any, frame: pd.DataFrame, **kw: Any) -> int:
    mv = ws.registry.register(model, "credit", input_example=frame[FEATURES].head(20), **kw)
    return int(mv.version)


def test_first_promotion_needs_no_holdout(
    workspace: Workspace, frame: pd.DataFrame, pipeline: Any
) -> None:
    _credit(workspace, pipeline, frame)
    result = workspace.registry.promote("credit/1", to="champion")
    assert (result.moved, result.first, result.previous, result.metric) == (True, True, None, None)
    assert workspace.registry.get("credit@champion").version == 1
    promoted = workspace.audit.events(AuditFilter(action="model.promoted"))
    assert [(e.subject, e.payload["first"], e.payload["forced"]) for e in promoted] == [
        ("model:credit/1", True, False)
    ]
    moved = workspace.audit.events(AuditFilter(action="model.alias_moved"))
    assert [(m.payload["from"], m.payload["to"]) for m in moved] == [(None, 1)]


def test_worse_candidate_is_refused_with_both_figures_stored(
    workspace: Workspace, frame: pd.DataFrame, pipeline: Any, weak_pipeline: Any, holdout: str
) -> None:
    reg = workspace.registry
    _credit(workspace, pipeline, frame)
    reg.promote("credit/1")
    # The training run records the holdout and target with the version; the gate reads them.
    _credit(workspace, weak_pipeline, frame, tags={"holdout": holdout, "target": "label"})
    with pytest.raises(PromotionRefused) as info:
        reg.promote("credit/2", to="champion")
    refused = info.value
    assert isinstance(refused, Conflict)
    assert refused.metric == "roc_auc"
    assert refused.dataset == "holdout@1"
    assert refused.candidate < refused.champion
    assert f"{refused.candidate:.6g}" in str(refused)
    assert f"{refused.champion:.6g}" in str(refused)
    assert reg.get("credit@champion").version == 1  # unchanged

    events = workspace.audit.events(AuditFilter(action="model.promotion_refused"))
    assert len(events) == 1
    gate = events[0].payload
    assert gate["candidate"] == {"version": 2, "score": refused.candidate}
    assert gate["champion"] == {"version": 1, "score": refused.champion}
    cand = reg.lineage("credit/2").evaluations
    champ = reg.lineage("credit/1").evaluations
    assert [(e["dataset"], e["metric"], e["value"]) for e in cand] == [
        ("holdout@1", "roc_auc", refused.candidate)
    ]
    assert [e["value"] for e in champ] == [refused.champion]
    assert workspace.audit.verify().ok


def test_better_candidate_is_promoted(
    workspace: Workspace, frame: pd.DataFrame, pipeline: Any, weak_pipeline: Any, holdout: str
) -> None:
    reg = workspace.registry
    _credit(workspace, weak_pipeline, frame)
    reg.promote("credit/1")
    _credit(workspace, pipeline, frame)
    result = reg.promote("credit/2", on=holdout, target="label", min_gain=0.01)
    assert (result.moved, result.previous, result.version, result.dataset) == (
        True,
        1,
        2,
        "holdout@1",
    )
    assert result.candidate_score is not None
    assert result.champion_score is not None
    assert result.candidate_score >= result.champion_score + 0.01
    assert reg.get("credit@champion").version == 2
    promoted = workspace.audit.events(AuditFilter(action="model.promoted"))[-1]
    assert promoted.payload["gate"]["candidate"]["score"] == result.candidate_score
    assert (promoted.payload["from"], promoted.payload["to"]) == (1, 2)
    assert [e["value"] for e in reg.lineage("credit/2").evaluations] == [result.candidate_score]


def test_equal_scores_pass_without_gain_and_fail_with_one(
    workspace: Workspace, frame: pd.DataFrame, pipeline: Any, holdout: str
) -> None:
    reg = workspace.registry
    for _ in range(3):
        _credit(workspace, pipeline, frame)
    reg.promote("credit/1")
    with pytest.raises(PromotionRefused, match=r"at least 0\.001"):
        reg.promote("credit/2", on=holdout, target="label", metric="accuracy", min_gain=0.001)
    result = reg.promote("credit/3", on=holdout, target="label", metric="accuracy")
    assert result.moved
    assert result.candidate_score == result.champion_score


def test_force_skips_the_gate_and_is_audited(
    workspace: Workspace, frame: pd.DataFrame, pipeline: Any, weak_pipeline: Any
) -> None:
    reg = workspace.registry
    _credit(workspace, pipeline, frame)
    reg.promote("credit/1")
    _credit(workspace, weak_pipeline, frame)
    with pytest.raises(InvalidInput, match="--on"):
        reg.promote("credit/2")  # no holdout known, no --on: the gate cannot run
    result = reg.promote("credit/2", force=True)
    assert (result.moved, result.forced, result.metric) == (True, True, None)
    event = workspace.audit.events(AuditFilter(action="model.promoted"))[-1]
    assert event.payload["forced"] is True
    assert "gate" not in event.payload
    assert reg.lineage("credit/2").evaluations == []


def test_regressor_gate_knows_lower_rmse_is_better(
    workspace: Workspace, frame: pd.DataFrame, ridge: Any
) -> None:
    reg = workspace.registry
    data = make_frame(n=200, seed=2)
    data["spend"] = data.income * 2 + data.age
    ref = workspace.datasets.add("spend_holdout", data).ref
    dummy = DummyRegressor().fit(frame[NUMERIC], frame.income * 2 + frame.age)
    for model in (ridge, dummy, ridge):
        reg.register(model, "spend", input_example=frame[NUMERIC].head(10))
    reg.promote("spend/1")
    with pytest.raises(PromotionRefused) as info:
        reg.promote("spend/2", on=ref, target="spend")
    assert info.value.metric == "rmse"
    assert info.value.candidate > info.value.champion  # worse, because higher
    assert "lower is better" in str(info.value)
    reg.promote("spend/2", force=True)
    result = reg.promote("spend/3", on=ref, target="spend")
    assert result.moved
    assert result.candidate_score is not None
    assert result.champion_score is not None
    assert result.candidate_score < result.champion_score


def test_gate_inputs_are_checked(
    workspace: Workspace, frame: pd.DataFrame, pipeline: Any, holdout: str
) -> None:
    reg = workspace.registry
    _credit(workspace, pipeline, frame)
    _credit(workspace, pipeline, frame)
    reg.promote("credit/1")
    with pytest.raises(InvalidInput, match="target"):
        reg.promote("credit/2", on=holdout, target="nope")
    with pytest.raises(InvalidInput, match="rmse does not apply"):
        reg.promote("credit/2", on=holdout, target="label", metric="rmse")
    with pytest.raises(InvalidInput, match="min_gain"):
        reg.promote("credit/2", on=holdout, target="label", min_gain=-1)
    assert reg.get("credit@champion").version == 1


def test_multiclass_gate_defaults_to_accuracy(workspace: Workspace, frame: pd.DataFrame) -> None:
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    reg = workspace.registry
    holdout = make_frame(n=200, seed=3)
    ref = workspace.datasets.add("regions", holdout).ref
    good = LogisticRegression(max_iter=500).fit(frame[NUMERIC], frame.region)
    dummy = DummyClassifier().fit(frame[NUMERIC], frame.region)
    for model in (dummy, good):
        mv = reg.register(model, "region", input_example=frame[NUMERIC].head(10))
    assert mv.signature["task"] == "multiclass_classification"
    assert mv.signature["classes"] == ["east", "north", "south"]
    reg.promote("region/1")
    result = reg.promote("region/2", on=ref, target="region")
    assert result.metric == "accuracy"
    expected = float((good.predict(holdout[NUMERIC]) == holdout.region).mean())
    assert result.candidate_score == pytest.approx(expected)

"""Stored drift checks: one audited write per check, drift.detected when drifted, history."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from modelcycle import Workspace
from modelcycle.errors import InvalidInput
from modelcycle.monitoring import Debounce


def _table(seed: int, shift: float = 0.0, n: int = 400) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "x": rng.normal(shift, 1, n),
            "y": rng.gamma(2.0 + 3 * shift, 1.0, n),
            "c": rng.choice(
                ["a", "b", "c"], n, p=[0.5, 0.3, 0.2] if not shift else [0.2, 0.3, 0.5]
            ),
        }
    )


def _actions(ws: Workspace) -> list[str]:
    return [e.action for e in ws.audit.events() if e.action.startswith("drift.")]


def test_a_check_is_stored_with_its_events(workspace: Workspace) -> None:
    quiet = workspace.monitoring.drift(_table(1), _table(2))
    assert quiet.id is not None
    assert not quiet.report.dataset_drift
    assert not quiet.detected
    assert _actions(workspace) == ["drift.checked"]

    loud = workspace.monitoring.drift(_table(1), _table(3, shift=1.0))
    assert loud.report.dataset_drift
    assert loud.detected
    assert loud.id == quiet.id + 1
    assert _actions(workspace) == ["drift.checked", "drift.checked", "drift.detected"]
    events = [e for e in workspace.audit.events() if e.action.startswith("drift.")]
    checked, detected = events[1], events[2]
    assert checked.seq + 1 == detected.seq  # one transaction, consecutive in the chain
    assert detected.subject == checked.subject == f"drift:{loud.id}"
    assert set(detected.payload["drifted_columns"]) == {"x", "y", "c"}
    assert workspace.audit.verify().ok

    history = workspace.monitoring.history()
    assert [h.id for h in history] == [quiet.id, loud.id]
    assert [h.dataset_drift for h in history] == [False, True]
    assert history[1].drifted_columns
    assert history[1].number_of_columns == 3
    assert history[0].reference == "reference"


def test_debounce_fires_only_when_k_of_the_last_m_checks_drifted(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        type(workspace.monitoring), "debounce", property(lambda self: Debounce(2, 3))
    )
    ref = _table(1)
    first = workspace.monitoring.drift(ref, _table(3, shift=1.0))
    assert first.report.dataset_drift
    assert not first.detected
    calm = workspace.monitoring.drift(ref, _table(4))
    assert not calm.report.dataset_drift
    second = workspace.monitoring.drift(ref, _table(5, shift=1.0))
    assert second.detected  # drifted, calm, drifted: 2 of the last 3
    assert _actions(workspace).count("drift.detected") == 1


def test_debounce_rule_is_validated() -> None:
    assert Debounce.from_config("2/3") == Debounce(2, 3)
    assert Debounce.from_config([1, 1]) == Debounce()
    with pytest.raises(InvalidInput, match="debounce"):
        Debounce.from_config([3, 2])
    with pytest.raises(InvalidInput, match="K/M"):
        Debounce.from_config("often")


def test_history_cli_shows_the_time_series(workspace: Workspace, cli: Any) -> None:
    workspace.monitoring.drift(_table(1), _table(2))
    workspace.monitoring.drift(_table(1), _table(3, shift=1.0))
    out = cli("monitor", "history", "--json", check=True)
    rows = json.loads(out.stdout)
    assert [r["dataset_drift"] for r in rows] == [False, True]
    table = cli("monitor", "history", check=True).stdout
    assert "DRIFT" in table
    assert "ok" in table
    empty = cli("monitor", "history", "--model", "nope", check=True).stdout
    assert "no stored drift checks" in empty

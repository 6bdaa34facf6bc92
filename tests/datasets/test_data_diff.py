"""``diff``: schema changes and distribution shift between two versions."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from modelcycle import Workspace
from modelcycle.datasets import make_credit, psi


def test_psi_values() -> None:
    assert psi([10, 20, 30], [1, 2, 3]) == 0.0
    # Hand-computed: shares (0.5, 0.5) -> (0.9, 0.1).
    expected = (0.9 - 0.5) * np.log(0.9 / 0.5) + (0.1 - 0.5) * np.log(0.1 / 0.5)
    assert psi([50, 50], [90, 10]) == pytest.approx(expected)
    assert psi([1, 0], [0, 1]) > 5  # empty bins are floored, not infinite


def test_diff_reports_schema_changes_and_shift(workspace: Workspace) -> None:
    a = make_credit(4000, seed=1)
    b = make_credit(4000, seed=2, drift=1.0)
    b = b.drop_columns(["loan_term"]).append_column("region", pa.array(["north"] * 4000))
    b = b.set_column(b.column_names.index("credit_lines"), "credit_lines",
                     b.column("credit_lines").cast(pa.float64()))  # fmt: skip
    workspace.datasets.add("credit", a)
    workspace.datasets.add("credit", b)
    d = workspace.datasets.diff("credit@1", "credit@latest")
    assert (d.a, d.b, d.same_content, d.num_rows) == ("credit@1", "credit@2", False, (4000, 4000))
    assert [c.name for c in d.added] == ["region"]
    assert [c.name for c in d.removed] == ["loan_term"]
    assert [(t.name, t.a, t.b) for t in d.type_changed] == [("credit_lines", "int64", "double")]
    shifts = {c.name: c for c in d.columns}
    assert "loan_term" not in shifts
    assert "region" not in shifts
    age = shifts["age"]
    da, db = a.column("age").to_numpy(), b.column("age").to_numpy()
    assert age.changes["mean"]["a"] == pytest.approx(da.mean())
    assert age.changes["mean"]["delta"] == pytest.approx(db.mean() - da.mean())
    assert age.changes["p50"]["b"] == pytest.approx(np.median(db))
    # Drift moved age, debt and employment a lot; an undrifted column barely.
    assert age.psi is not None
    assert age.psi > 0.1
    assert shifts["debt_ratio"].psi is not None
    assert shifts["debt_ratio"].psi > 0.1
    assert shifts["loan_amount"].psi is not None
    assert shifts["loan_amount"].psi < 0.05
    emp = shifts["employment"]
    assert emp.kind == "categorical"
    assert emp.psi is not None
    ua = a.column("employment").to_pylist().count("unemployed") / 4000
    ub = b.column("employment").to_pylist().count("unemployed") / 4000
    assert emp.changes["share[unemployed]"] == pytest.approx({"a": ua, "b": ub, "delta": ub - ua})
    as_json = d.as_dict()
    assert as_json["type_changed"] == [{"name": "credit_lines", "a": "int64", "b": "double"}]


def test_diff_of_a_version_with_itself(workspace: Workspace) -> None:
    workspace.datasets.add("c", make_credit(500, seed=0))
    d = workspace.datasets.diff("c", "c@1")
    assert d.same_content
    assert not d.added
    assert not d.removed
    assert not d.type_changed
    assert all(c.psi == pytest.approx(0.0, abs=1e-12) for c in d.columns if c.psi is not None)

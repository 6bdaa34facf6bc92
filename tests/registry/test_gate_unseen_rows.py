"""The promotion gate scores on holdout rows neither model trained on (issue 13, item 2).

When a data set grows by appending rows, the new version's holdout holds rows the champion
trained on. Scored on those, a memorising champion looks better than it is and a better
candidate is refused. The trainer records its training rows (hashes); the gate leaves them out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from _registry_helpers import FEATURES, make_frame
from sklearn.metrics import roc_auc_score

from _cli import run_cli
from modelcycle import Workspace
from modelcycle.registry import encode_row_hashes, row_hashes
from modelcycle.store import AuditFilter


def _loans(n: int, seed: int) -> pa.Table:
    """A noisy linear problem: a forest memorises its training rows, a logistic model
    generalises better."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    noise = rng.normal(0, 1.2, n)
    y = (x @ np.array([1.0, 0.8, -0.6, 0.4]) + noise > 0).astype("int64")
    return pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "d": x[:, 3], "label": y})


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    names = sorted(table.column_names)
    return list(zip(*(table.column(n).to_pylist() for n in names), strict=True))


def _auc(ws: Workspace, ref: str, table: pa.Table) -> float:
    proba = ws.registry.load(ref).predict_proba(table.drop_columns(["label"]))
    return float(roc_auc_score(table.column("label").to_numpy(), proba[:, 1]))


# The database plays no part here: SQLite only, to keep the three trainings quick.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_gate_leaves_out_rows_the_champion_trained_on(workspace: Workspace) -> None:
    ws = workspace
    first = _loans(1000, seed=1)
    ws.datasets.add("loans", first)
    run1 = ws.pipelines.train("loans@1", "label", model="rf", register="m", progress=False)
    assert run1.ok, run1.error
    assert ws.registry.promote("m/1").first
    # This month's rows appended: loans@2 contains every row of loans@1.
    ws.datasets.add("loans", pa.concat_tables([first, _loans(1000, seed=2)]))
    run2 = ws.pipelines.train("loans@2", "label", model="logreg", register="m", progress=False)
    assert run2.ok, run2.error
    holdout = ws.datasets.get("loans-holdout", 2)
    assert holdout.num_rows == 400

    # Counted independently of the hashes: holdout rows that were v1's training rows.
    trained_v1 = set(_rows(ws.pipelines.output(run1.id, "split", "train_set")))
    seen = np.array([row in trained_v1 for row in _rows(holdout)])
    assert 50 < seen.sum() < 200
    unseen = holdout.filter(pa.array(~seen))
    # Without the fix the gate scores the whole holdout, where the forest recites rows it
    # memorised and wins; on the rows neither model saw, the candidate is the better model.
    assert _auc(ws, "m/1", holdout) > _auc(ws, "m/2", holdout)
    assert _auc(ws, "m/2", unseen) > _auc(ws, "m/1", unseen)

    proc = run_cli("models", "promote", "m/2", "--to", "champion", cwd=ws.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    n_seen = int(seen.sum())
    assert (
        f"rows evaluated: {400 - n_seen} of 400 holdout rows; excluded as seen in training: "
        f"{n_seen} (candidate 0, champion {n_seen})"
    ) in proc.stdout
    assert "m@champion moved from version 1 to 2" in proc.stdout
    assert ws.registry.get("m@champion").version == 2
    (event,) = ws.audit.events(AuditFilter(action="model.promoted", subject="model:m/2"))
    gate = event.payload["gate"]
    assert gate["rows"] == {
        "holdout": 400,
        "evaluated": 400 - n_seen,
        "excluded": n_seen,
        "seen_in_training": {"candidate": 0, "champion": n_seen},
        "unchecked": {},
    }
    assert gate["candidate"]["score"] == pytest.approx(_auc(ws, "m/2", unseen))
    assert gate["champion"]["score"] == pytest.approx(_auc(ws, "m/1", unseen))

    # A few more rows appended and another seed: the new holdout is mostly rows m/2 trained on.
    ws.datasets.add("loans", pa.concat_tables([first, _loans(1000, seed=2), _loans(20, seed=3)]))
    run3 = ws.pipelines.train(
        "loans@3", "label", model="logreg", register="m", seed=5, progress=False
    )
    assert run3.ok, run3.error
    holdout3 = ws.datasets.get("loans-holdout", 3)
    trained_v2 = set(_rows(ws.pipelines.output(run2.id, "split", "train_set")))
    left = sum(row not in trained_v2 for row in _rows(holdout3))
    assert left < 200
    proc = run_cli("models", "promote", "m/3", "--min-rows", "200", cwd=ws.root)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    message = " ".join(proc.stderr.split())
    assert "too few unseen rows" in message
    assert f"only {left} rows of loans-holdout@3 were used to train neither model" in message
    assert f"{holdout3.num_rows - left} left out as seen in training" in message
    assert "needs at least 200" in message
    assert ws.registry.get("m@champion").version == 2
    (refused,) = ws.audit.events(AuditFilter(action="model.promotion_refused"))
    assert refused.payload["reason"] == "too_few_unseen_rows"
    assert refused.payload["rows"]["evaluated"] == left


def test_models_without_recorded_training_rows_are_scored_as_before_with_a_warning(
    workspace: Workspace, frame: pd.DataFrame, pipeline: Any, weak_pipeline: Any
) -> None:
    holdout = workspace.datasets.add("holdout", make_frame(n=200, seed=1)).ref
    reg = workspace.registry
    example = frame[FEATURES].head(20)
    reg.register(weak_pipeline, "hand", input_example=example)
    reg.promote("hand/1")
    reg.register(pipeline, "hand", input_example=example, tags={"holdout": holdout})
    result = reg.promote("hand/2", target="label")
    assert result.moved
    assert result.rows is not None
    assert (result.rows["evaluated"], result.rows["excluded"]) == (200, 0)
    assert set(result.rows["unchecked"]) == {"candidate", "champion"}
    assert any("hand/1 has no recorded training rows" in w for w in result.warnings)
    # The CLI shows the warning.
    reg.register(weak_pipeline, "hand", input_example=example, tags={"holdout": holdout})
    proc = run_cli("models", "promote", "hand/3", "--target", "label", cwd=workspace.root)
    assert proc.returncode == 4, proc.stdout + proc.stderr  # the weak model is refused ...
    assert "200 of 200 holdout rows" in " ".join(proc.stderr.split())  # ... on every row


def test_row_hashes_match_across_column_order_numeric_width_and_encoding() -> None:
    a = pa.table(
        {
            "n": pa.array([1, 2, None], pa.int64()),
            "s": ["x", None, "y"],
            "f": [0.5, -0.0, float("nan")],
        }
    )
    # The same rows as a CSV reader might give them: floats, dictionary text, other order.
    b = pa.table(
        {
            "f": [0.5, 0.0, float("nan")],
            "s": pa.array(["x", None, "y"]).dictionary_encode(),
            "n": pa.array([1.0, 2.0, None]),
            "extra": [9, 9, 9],
        }
    )
    assert list(row_hashes(a, ["n", "s", "f"])) == list(row_hashes(b, ["f", "s", "n"]))
    different = pa.table({"n": [1, 2, 3], "s": ["x", None, "y"], "f": [0.5, 0.0, float("nan")]})
    assert list(row_hashes(a, ["n", "s", "f"]) == row_hashes(different, ["n", "s", "f"])) == [
        True,
        True,
        False,
    ]
    stored = encode_row_hashes(np.concatenate([row_hashes(a, ["n"]), row_hashes(a, ["n"])]))
    assert stored.dtype == np.uint64
    assert list(stored) == sorted(set(row_hashes(a, ["n"]).tolist()))

"""Profiles checked against numpy and pandas computed independently."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from modelcycle import Workspace
from modelcycle.datasets import make_credit, profile_table
from modelcycle.datasets.profile import FINE_BINS, QUANTILES


def _numeric_table(n: int, seed: int = 3) -> tuple[pa.Table, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Large offset, small spread: a naive sum-of-squares variance would lose digits here.
    x = rng.normal(1e6, 3.0, n)
    mask = rng.random(n) < 0.05
    return pa.table({"x": pa.array(x, mask=mask)}), x[~mask]


def test_numeric_profile_matches_numpy_across_batches() -> None:
    table, values = _numeric_table(30_000)
    # Batches of 997 rows: the merged moments must equal the one-shot ones.
    table = pa.Table.from_batches(table.to_batches(max_chunksize=997))
    p = profile_table(table)
    col = p["columns"]["x"]
    assert p["profile_version"] == 1
    assert p["num_rows"] == 30_000
    assert col["kind"] == "numeric"
    assert col["count"] == len(values)
    assert col["nulls"] == 30_000 - len(values)
    assert col["mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert col["std"] == pytest.approx(values.std(ddof=1), rel=1e-9)
    assert col["std"] == pytest.approx(pd.Series(values).std(), rel=1e-9)
    assert (col["min"], col["max"]) == (values.min(), values.max())
    assert col["quantiles_exact"] is True
    for key, q in QUANTILES.items():
        assert col["quantiles"][key] == pytest.approx(np.quantile(values, q), rel=1e-15), key
    hist = col["histogram"]
    assert len(hist["counts"]) == 20
    assert len(hist["edges"]) == 21
    assert sum(hist["counts"]) == col["count"]
    expected, _ = np.histogram(values, bins=np.linspace(values.min(), values.max(), 21))
    assert hist["counts"] == expected.tolist()


def test_approximate_quantiles_stay_within_the_documented_bound() -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.exponential(5.0, 40_000), [0.0, 500.0]])
    p = profile_table(pa.table({"x": values}), exact_quantile_cap=1000)
    col = p["columns"]["x"]
    assert col["quantiles_exact"] is False
    bound = (values.max() - values.min()) / (2 * FINE_BINS)
    ordered = np.sort(values)
    for key, q in QUANTILES.items():
        rank = math.floor((len(values) - 1) * q)
        assert abs(col["quantiles"][key] - ordered[rank]) <= bound * (1 + 1e-9), key
        # numpy interpolates towards the next order statistic: off by at most that gap more.
        gap = ordered[rank + 1] - ordered[rank]
        assert abs(col["quantiles"][key] - np.quantile(values, q)) <= bound + gap, key


def test_non_finite_values_are_counted_apart() -> None:
    p = profile_table(pa.table({"x": [1.0, 2.0, math.nan, math.inf, None, 3.0]}))
    col = p["columns"]["x"]
    assert (col["count"], col["nulls"], col["non_finite"]) == (5, 1, 2)
    assert (col["mean"], col["min"], col["max"]) == (2.0, 1.0, 3.0)
    assert sum(col["histogram"]["counts"]) == 3


def test_constant_and_integer_columns() -> None:
    p = profile_table(pa.table({"c": [7, 7, 7], "i": pa.array([1, 2, None], pa.int32())}))
    c, i = p["columns"]["c"], p["columns"]["i"]
    assert c["histogram"] == {"edges": [7.0, 7.0], "counts": [3]}
    assert c["std"] == 0.0
    assert isinstance(c["min"], int)
    assert (i["count"], i["nulls"], i["mean"], i["type"]) == (2, 1, 1.5, "int32")


def test_categorical_top_k_and_other() -> None:
    # 30 values with counts 30, 29, ..., 1: the top 20 are 'v00'..'v19', the rest is 'other'.
    values = [f"v{i:02d}" for i in range(30) for _ in range(30 - i)]
    values += [None] * 4
    p = profile_table(pa.Table.from_batches(pa.table({"s": values}).to_batches(50)))
    col = p["columns"]["s"]
    counts = pd.Series([v for v in values if v is not None]).value_counts()
    assert col["kind"] == "categorical"
    assert (col["count"], col["nulls"]) == (len(values) - 4, 4)
    assert col["cardinality"] == 30
    assert col["cardinality_exact"] is True
    assert [t["value"] for t in col["top"]] == [f"v{i:02d}" for i in range(20)]
    assert [t["count"] for t in col["top"]] == counts.iloc[:20].tolist()
    assert col["other_count"] == int(counts.iloc[20:].sum())


def test_cardinality_cap_switches_to_a_bounded_summary() -> None:
    rng = np.random.default_rng(0)
    heavy = ["a"] * 3000 + ["b"] * 2000
    noise = [f"id{i}" for i in rng.permutation(5000)]
    values = heavy + noise
    order = rng.permutation(len(values))
    table = pa.table({"s": [values[i] for i in order]})
    p = profile_table(pa.Table.from_batches(table.to_batches(500)), cardinality_cap=100)
    col = p["columns"]["s"]
    assert col["cardinality_exact"] is False
    assert col["cardinality"] == 101
    top = {t["value"]: t["count"] for t in col["top"]}
    # Misra-Gries: counts are lower bounds, low by at most n / (cap + 1).
    slack = len(values) / 101
    assert 3000 - slack <= top["a"] <= 3000
    assert 2000 - slack <= top["b"] <= 2000
    assert list(top)[:2] == ["a", "b"]


def test_bools_are_categorical_and_other_types_get_counts() -> None:
    p = profile_table(
        pa.table(
            {
                "b": [True, False, True, None],
                "t": pa.array([1, 2, None, 4], pa.timestamp("s")),
            }
        )
    )
    b, t = p["columns"]["b"], p["columns"]["t"]
    assert b["top"] == [{"value": True, "count": 2}, {"value": False, "count": 1}]
    assert t["kind"] == "other"
    assert (t["count"], t["nulls"]) == (3, 1)
    assert t["min"] == "1970-01-01T00:00:01"
    assert t["max"] == "1970-01-01T00:00:04"


def test_stored_profile_equals_the_in_memory_one(workspace: Workspace) -> None:
    table = make_credit(3000, seed=4)
    v = workspace.datasets.add("credit", table)
    assert v.profile == profile_table(workspace.datasets.get("credit"))
    df = table.to_pandas()
    age = v.profile["columns"]["age"]
    assert age["mean"] == pytest.approx(df["age"].mean())
    assert age["quantiles"]["p50"] == pytest.approx(df["age"].median())
    income = v.profile["columns"]["income"]
    assert income["nulls"] == int(df["income"].isna().sum()) > 0
    assert income["std"] == pytest.approx(df["income"].std())
    assert [c["nullable"] for c in v.schema if c["name"] in ("age", "income")] == [False, True]
    emp = v.profile["columns"]["employment"]
    assert {t["value"]: t["count"] for t in emp["top"]} == df["employment"].value_counts().to_dict()
    assert emp["other_count"] == 0

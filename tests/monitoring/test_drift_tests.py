"""Each statistic and p-value equals scipy's on the arrays Evidently 0.7 would build (to 1e-9).

The expected values are computed here independently with pandas, following Evidently's recipe
(NaN and infinities dropped, expected counts scaled from the reference, Sturges bins ...).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats
from scipy.spatial import distance

from modelcycle import InvalidInput
from modelcycle.monitoring import DriftPolicy, compute_drift, default_method, get_drift_test

RNG = np.random.default_rng(7)


def _clean(values: np.ndarray) -> pd.Series:
    s = pd.Series(values).replace([np.inf, -np.inf], np.nan).dropna()
    return s.reset_index(drop=True)


def _evidently_binned(ref: pd.Series, cur: pd.Series, numerical: bool, fill: bool):  # type: ignore[no-untyped-def]
    if numerical and ref.nunique() > 20:
        bins = np.histogram_bin_edges(pd.concat([ref, cur]).values, bins="sturges")
        r = np.histogram(ref, bins)[0] / len(ref)
        c = np.histogram(cur, bins)[0] / len(cur)
    else:
        keys = sorted(set(ref.unique()) | set(cur.unique()))
        rc, cc = ref.value_counts(), cur.value_counts()
        r = np.array([rc.get(k, 0) / len(ref) for k in keys])
        c = np.array([cc.get(k, 0) / len(cur) for k in keys])
    if fill:
        for a in (r, c):
            m = a[a != 0].min()
            a[a == 0] = m / 10**6 if m <= 0.0001 else 0.0001
    return r, c


def _numeric_pair(n_ref: int, n_cur: int, shift: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    ref = np.round(RNG.normal(0, 1, n_ref), 2)  # rounding makes ties
    cur = np.round(RNG.normal(shift, 1.2, n_cur), 2)
    ref[::17] = np.nan
    cur[::13] = np.nan
    cur[5] = np.inf
    return ref, cur


def _run(method: str, ref: np.ndarray, cur: np.ndarray, **policy: object):  # type: ignore[no-untyped-def]
    report = compute_drift(
        pa.table({"x": ref}), pa.table({"x": cur}), policy=DriftPolicy(method=method, **policy)
    )
    return report.column("x")


def test_ks_equals_scipy_with_ties_and_nans() -> None:
    ref, cur = _numeric_pair(800, 600)
    col = _run("ks", ref, cur)
    expected = stats.ks_2samp(_clean(ref), _clean(cur))
    assert col.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert col.p_value == pytest.approx(expected.pvalue, abs=1e-9)
    assert col.drifted == (expected.pvalue <= 0.05)
    assert col.reference_rows == len(_clean(ref))
    assert col.missing_share_reference == pytest.approx(1 - len(_clean(ref)) / 800)


def test_wasserstein_normed_by_reference_std() -> None:
    ref, cur = _numeric_pair(3000, 2000)
    col = _run("wasserstein", ref, cur)
    r, c = _clean(ref), _clean(cur)
    expected = stats.wasserstein_distance(r, c) / max(np.std(r), 0.001)
    assert col.statistic == pytest.approx(expected, abs=1e-9)
    assert col.p_value is None


def test_chisquare_scales_reference_counts_and_sees_unseen_categories() -> None:
    ref = RNG.choice(["a", "b", "c", "d"], 500, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    cur = RNG.choice(["a", "b", "c", "d"], 300, p=[0.3, 0.3, 0.3, 0.1]).astype(object)
    ref[::11] = None
    col = _run("chisquare", ref, cur)
    r, c = pd.Series(ref).dropna(), pd.Series(cur).dropna()
    keys = sorted(set(r) | set(c))
    f_exp = [r.value_counts().get(k, 0) * len(c) / len(r) for k in keys]
    f_obs = [c.value_counts().get(k, 0) for k in keys]
    expected = stats.chisquare(f_obs, f_exp)
    assert col.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert col.p_value == pytest.approx(expected.pvalue, abs=1e-9)
    unseen = _run(
        "chisquare",
        np.array(["a", "b"] * 50, dtype=object),
        np.array(["a", "b", "new"] * 30, dtype=object),
    )
    assert unseen.drifted


def test_z_test_two_proportions() -> None:
    ref = RNG.choice([0, 1], 700, p=[0.7, 0.3]).astype(float)
    cur = RNG.choice([0, 1], 400, p=[0.6, 0.4]).astype(float)
    col = _run("z", ref, cur)
    n1, n2 = len(ref), len(cur)
    p1, p2 = (ref != 0).mean(), (cur != 0).mean()
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert col.p_value == pytest.approx(2 * (1 - stats.norm.cdf(abs(z))), abs=1e-9)
    same = _run("z", np.ones(50), np.ones(60))
    assert same.p_value == 1.0
    assert not same.drifted


@pytest.mark.parametrize("numerical", [True, False])
def test_jensenshannon_psi_kl_on_evidently_bins(numerical: bool) -> None:
    if numerical:
        ref, cur = _numeric_pair(2500, 1500)
    else:
        ref = RNG.choice(list("abcdefg"), 2000).astype(object)
        cur = RNG.choice(list("abcdefgh"), 1500).astype(object)
    r, c = _clean(ref), _clean(cur)
    js = _run("jensenshannon", ref, cur)
    er, ec = _evidently_binned(r, c, numerical, fill=False)
    assert js.statistic == pytest.approx(distance.jensenshannon(er, ec), abs=1e-9)
    fr, fc = _evidently_binned(r, c, numerical, fill=True)
    psi = _run("psi", ref, cur)
    assert psi.statistic == pytest.approx(np.sum((fr - fc) * np.log(fr / fc)), abs=1e-9)
    kl = _run("kl_div", ref, cur)
    assert kl.statistic == pytest.approx(stats.entropy(fr, fc), abs=1e-9)


def test_anderson_and_cramer_von_mises_equal_scipy() -> None:
    ref, cur = _numeric_pair(400, 300)
    r, c = _clean(ref).to_numpy(), _clean(cur).to_numpy()
    ad = _run("anderson", ref, cur)
    assert ad.p_value == pytest.approx(
        stats.anderson_ksamp([r, c], variant="midrank").pvalue, abs=1e-9
    )
    cvm = _run("cramer_von_mises", ref, cur)
    assert cvm.p_value == pytest.approx(stats.cramervonmises_2samp(r, c).pvalue, abs=1e-9)


def test_hellinger_is_zero_for_identical_and_grows_with_shift() -> None:
    ref = RNG.normal(0, 1, 2000)
    assert _run("hellinger", ref, ref.copy()).statistic == pytest.approx(0.0, abs=1e-6)
    small = _run("hellinger", ref, RNG.normal(0.1, 1, 2000)).statistic
    big = _run("hellinger", ref, RNG.normal(1.5, 1, 2000)).statistic
    assert small is not None
    assert big is not None
    assert 0 < small < big <= 1
    cats = _run("hellinger", np.array(list("aabb")), np.array(list("aabb")))
    assert cats.statistic == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("ctype", "rows", "distinct", "method"),
    [
        ("numerical", 1000, 6, "ks"),
        ("numerical", 1001, 6, "wasserstein"),
        ("numerical", 1000, 5, "chisquare"),
        ("numerical", 1000, 2, "z"),
        ("numerical", 1001, 5, "jensenshannon"),
        ("categorical", 1000, 3, "chisquare"),
        ("categorical", 1000, 2, "z"),
        ("categorical", 1001, 2, "jensenshannon"),
        ("categorical", 5000, 40, "jensenshannon"),
    ],
)
def test_default_method_table(ctype: str, rows: int, distinct: int, method: str) -> None:
    assert default_method(ctype, rows, distinct) == method


def test_integer_column_with_few_values_is_categorical() -> None:
    ref = pa.table({"k": pa.array(RNG.integers(0, 10, 500)), "f": RNG.normal(size=500)})
    cur = pa.table({"k": pa.array(RNG.integers(0, 10, 500)), "f": RNG.normal(size=500)})
    report = compute_drift(ref, cur)
    assert report.column("k").type == "categorical"
    assert report.column("k").method == "chisquare"
    assert report.column("f").type == "numerical"
    assert report.column("f").method == "ks"


def test_empty_window_is_not_enough_data_never_drift() -> None:
    ref = pa.table({"x": RNG.normal(size=100)})
    cur = pa.table({"x": pa.array([], type=pa.float64())})
    report = compute_drift(ref, cur)
    assert report.status == "not_enough_data"
    assert not report.dataset_drift
    assert report.column("x").status == "not_enough_data"
    assert not report.column("x").drifted
    all_nan = compute_drift(ref, pa.table({"x": [float("nan")] * 50}))
    assert all_nan.column("x").status == "not_enough_data"
    assert all_nan.column("x").missing_share_current == 1.0
    assert all_nan.column("x").missing_drifted


def test_unknown_method_and_columns_are_clear_errors() -> None:
    with pytest.raises(InvalidInput, match="method"):
        get_drift_test("magic")
    with pytest.raises(InvalidInput, match="numerical"):
        _run("ks", np.array(list("ab") * 10, dtype=object), np.array(list("ab") * 10, dtype=object))
    with pytest.raises(InvalidInput, match="not in both tables: nope"):
        compute_drift(pa.table({"x": [1.0]}), pa.table({"x": [1.0]}), columns=["nope"])
    with pytest.raises(InvalidInput, match="drift_share"):
        DriftPolicy(drift_share=0)

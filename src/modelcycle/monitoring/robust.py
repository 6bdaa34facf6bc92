"""Robust drift: an effect size with a bootstrap interval, and p-values corrected across columns.

Plain drift tests flag nearly every column at large sample sizes (tiny, harmless shifts are
'significant') and little at small ones. In robust mode a column counts as drifted only when
both hold:

1. its p-value (KS for numerical columns; for categorical ones a chi-square test of
   homogeneity on the 2 x k table of counts, which, unlike the goodness-of-fit recipe of the
   default 'chisquare' test, accounts for the reference being a sample too), corrected
   across all tested columns with Benjamini-Hochberg, is below ``alpha`` (0.05): the change
   is unlikely to be noise, with the false discovery rate controlled over the columns;
2. the lower end of a 90% bootstrap interval of its effect size (normed Wasserstein for
   numerical columns, Jensen-Shannon for categorical ones) reaches the effect threshold (0.1
   unless set): the change is big enough to matter.

The bootstrap resamples each side with replacement, at most 5,000 values a side, ``bootstrap``
times (200) with a fixed seed: repeatable, and bounded in cost whatever the row count.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa

from modelcycle.monitoring.drift_columns import ColumnDrift, prepare_column
from modelcycle.monitoring.drift_tests import DRIFT_TESTS
from modelcycle.monitoring.policy import DriftPolicy

__all__ = ["apply_robust", "benjamini_hochberg"]

_MAX_RESAMPLE = 5000
_INTERVAL = (5.0, 95.0)


def benjamini_hochberg(p_values: list[float]) -> list[float]:
    """BH-adjusted p-values (monotone, capped at 1), in the input order."""
    n = len(p_values)
    if n == 0:
        return []
    order = np.argsort(p_values)
    ranked = np.asarray(p_values, dtype=np.float64)[order] * n / np.arange(1, n + 1)
    adjusted_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    adjusted = np.empty(n)
    adjusted[order] = np.minimum(adjusted_sorted, 1.0)
    return [float(p) for p in adjusted]


def apply_robust(
    results: list[ColumnDrift], reference: pa.Table, current: pa.Table, policy: DriftPolicy
) -> list[ColumnDrift]:
    """Recompute each tested column's verdict under the robust rule."""
    rng = np.random.default_rng(policy.seed)
    tested = [r for r in results if r.status == "ok"]
    details: dict[str, dict[str, Any]] = {}
    for col in tested:
        prepared = prepare_column(reference.column(col.name), current.column(col.name), col.type)
        if col.type == "numerical":
            test, effect_name = "ks", "wasserstein"
            p_value = (
                DRIFT_TESTS[test].run(prepared.reference, prepared.current, col.type, 0.05).p_value
            )
        else:
            test, effect_name = "chi2_homogeneity", "jensenshannon"
            p_value = _homogeneity_p_value(prepared.reference, prepared.current)
        effect_test = DRIFT_TESTS[effect_name]
        effect = effect_test.run(prepared.reference, prepared.current, col.type, 0.0).statistic
        samples = [
            effect_test.run(
                _resample(prepared.reference, rng), _resample(prepared.current, rng), col.type, 0.0
            ).statistic
            for _ in range(policy.bootstrap)
        ]
        low, high = (float(v) for v in np.percentile(samples, _INTERVAL))
        details[col.name] = {
            "test": test,
            "p_value": p_value,
            "effect": effect_name,
            "effect_size": effect,
            "effect_interval": [low, high],
            "effect_threshold": policy.threshold_for(col.name, effect_name),
            "alpha": policy.alpha,
        }
    adjusted = benjamini_hochberg([details[c.name]["p_value"] for c in tested])
    for col, p_adj in zip(tested, adjusted, strict=True):
        details[col.name]["p_adjusted"] = p_adj
    out = []
    for col in results:
        d = details.get(col.name)
        if d is None:
            out.append(col)
            continue
        drifted = (
            d["p_adjusted"] < policy.alpha and d["effect_interval"][0] >= d["effect_threshold"]
        )
        out.append(replace(col, drifted=drifted, robust=d))
    return out


def _homogeneity_p_value(reference: np.ndarray[Any, Any], current: np.ndarray[Any, Any]) -> float:
    keys, inverse = np.unique(np.concatenate([reference, current]), return_inverse=True)
    if len(keys) < 2:
        return 1.0
    table = np.vstack(
        [
            np.bincount(inverse[: len(reference)], minlength=len(keys)),
            np.bincount(inverse[len(reference) :], minlength=len(keys)),
        ]
    )
    from scipy import stats  # imported when used (drift_tests._jensen_shannon says why)

    return float(stats.chi2_contingency(table, correction=False).pvalue)


def _resample(values: np.ndarray[Any, Any], rng: np.random.Generator) -> np.ndarray[Any, Any]:
    size = min(len(values), _MAX_RESAMPLE)
    return values[rng.integers(0, len(values), size)]

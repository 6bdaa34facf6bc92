"""Drift tests: one small class per statistical test, each a pure function of two samples.

Every test takes the reference and current values of one column with missing values and
infinities already removed (the caller reports those as their own 'missing share'), and
returns its statistic, its p-value (None for distances) and whether it crosses the threshold.
Statistics and p-values are scipy's, computed on the same arrays Evidently 0.7 feeds scipy, so
results can be compared one to one:

| name | kind | default threshold | drifted when |
| --- | --- | --- | --- |
| ks | p-value (scipy.stats.ks_2samp) | 0.05 | p <= threshold |
| chisquare | p-value (scipy chisquare; expected = scaled ref. counts) | 0.05 | p < threshold |
| z | p-value (two-proportion z-test) | 0.05 | p < threshold |
| wasserstein | distance / max(std(reference), 0.001) | 0.1 | >= threshold |
| jensenshannon | as scipy.spatial.distance.jensenshannon, natural log | 0.1 | >= threshold |
| psi | population stability index | 0.1 (0.25 'major') | >= threshold |
| kl_div | scipy.stats.entropy(reference, current) | 0.1 | >= threshold |
| anderson | p-value (scipy.stats.anderson_ksamp) | 0.1 | p < threshold |
| cramer_von_mises | p-value (scipy.stats.cramervonmises_2samp) | 0.1 | p <= threshold |
| hellinger | Hellinger distance | 0.1 | >= threshold |
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from modelcycle.errors import InvalidInput

__all__ = [
    "DRIFT_TESTS",
    "ColumnType",
    "DriftTest",
    "TestOutcome",
    "binned_shares",
    "get_drift_test",
    "wasserstein_1d",
]

ColumnType = str  # "numerical" or "categorical"
Values = NDArray[Any]


@dataclass(frozen=True, slots=True)
class TestOutcome:
    """What one test said about one column."""

    statistic: float
    p_value: float | None
    drifted: bool


class DriftTest(ABC):
    """One statistical test or distance. Subclasses set the class attributes and ``_score``."""

    name: ClassVar[str]
    label: ClassVar[str]
    kind: ClassVar[str]  # "p_value" or "distance"
    default_threshold: ClassVar[float]
    column_types: ClassVar[frozenset[str]] = frozenset({"numerical", "categorical"})
    # How the threshold is crossed: p-values below it, distances at or above it.
    inclusive: ClassVar[bool] = True

    def run(
        self, reference: Values, current: Values, column_type: ColumnType, threshold: float
    ) -> TestOutcome:
        """Score ``current`` against ``reference`` (both without missing values)."""
        if column_type not in self.column_types:
            raise InvalidInput(
                f"{self.name} does not apply to {column_type} columns; it takes "
                f"{' or '.join(sorted(self.column_types))} ones",
                field="method",
            )
        with warnings.catch_warnings():
            # scipy warns on ties and tiny samples; the result is still what scipy returns.
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", UserWarning)
            statistic, p_value = self._score(reference, current, column_type)
        return TestOutcome(statistic, p_value, self._crosses(statistic, p_value, threshold))

    def _crosses(self, statistic: float, p_value: float | None, threshold: float) -> bool:
        if self.kind == "p_value":
            assert p_value is not None
            if math.isnan(p_value):
                return False
            return p_value <= threshold if self.inclusive else p_value < threshold
        if math.isnan(statistic):
            return False
        return statistic >= threshold

    @abstractmethod
    def _score(
        self, reference: Values, current: Values, column_type: ColumnType
    ) -> tuple[float, float | None]: ...


def _counts(reference: Values, current: Values) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Counts per distinct value over both samples, in one shared order of keys."""
    keys, inverse = np.unique(np.concatenate([reference, current]), return_inverse=True)
    ref_idx, cur_idx = inverse[: len(reference)], inverse[len(reference) :]
    ref_counts = np.bincount(ref_idx, minlength=len(keys)).astype(np.float64)
    cur_counts = np.bincount(cur_idx, minlength=len(keys)).astype(np.float64)
    return ref_counts, cur_counts


def binned_shares(
    reference: Values, current: Values, column_type: ColumnType, *, fill_zeroes: bool = True
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Shares per bin as Evidently bins them for PSI, KL and Jensen-Shannon.

    Numerical columns with more than 20 distinct reference values: Sturges bins over both
    samples together; otherwise one bin per distinct value. With ``fill_zeroes``, empty bins get
    a small share (the smallest non-zero share / 10**6 when that is <= 0.0001, else 0.0001) so
    that logarithms stay finite.
    """
    if column_type == "numerical" and len(np.unique(reference)) > 20:
        both = np.concatenate([reference, current]).astype(np.float64)
        edges = np.histogram_bin_edges(both, bins="sturges")
        ref = np.histogram(reference, edges)[0] / len(reference)
        cur = np.histogram(current, edges)[0] / len(current)
    else:
        ref_counts, cur_counts = _counts(reference, current)
        ref, cur = ref_counts / len(reference), cur_counts / len(current)
    if fill_zeroes:
        for shares in (ref, cur):
            nonzero = shares[shares != 0]
            if len(nonzero) and len(nonzero) < len(shares):
                smallest = float(nonzero.min())
                shares[shares == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return ref.astype(np.float64), cur.astype(np.float64)


class KolmogorovSmirnov(DriftTest):
    name = "ks"
    label = "K-S p-value"
    kind = "p_value"
    default_threshold = 0.05
    column_types = frozenset({"numerical"})

    def _score(self, reference: Values, current: Values, column_type: str) -> tuple[float, float]:
        from scipy import stats  # see _jensen_shannon: imported when used

        result = stats.ks_2samp(reference, current)
        return float(result.statistic), float(result.pvalue)


class ChiSquare(DriftTest):
    name = "chisquare"
    label = "chi-square p-value"
    kind = "p_value"
    default_threshold = 0.05
    inclusive = False

    def _score(self, reference: Values, current: Values, column_type: str) -> tuple[float, float]:
        from scipy import stats  # see _jensen_shannon: imported when used

        ref_counts, cur_counts = _counts(reference, current)
        expected = ref_counts * (len(current) / len(reference))
        result = stats.chisquare(cur_counts, expected)
        return float(result.statistic), float(result.pvalue)


class ZTest(DriftTest):
    """Two-proportion z-test on the share of the first (sorted) value: for two-valued columns."""

    name = "z"
    label = "Z-test p-value"
    kind = "p_value"
    default_threshold = 0.05
    inclusive = False

    def _score(self, reference: Values, current: Values, column_type: str) -> tuple[float, float]:
        keys = np.unique(np.concatenate([reference, current]))
        if len(keys) == 1:
            return 0.0, 1.0
        n1, n2 = len(reference), len(current)
        p1 = float(np.count_nonzero(reference != keys[0])) / n1
        p2 = float(np.count_nonzero(current != keys[0])) / n2
        pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
        z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
        from scipy import stats  # see _jensen_shannon: imported when used

        return z, float(2 * (1 - stats.norm.cdf(abs(z))))


class Wasserstein(DriftTest):
    name = "wasserstein"
    label = "Wasserstein distance (normed)"
    kind = "distance"
    default_threshold = 0.1
    column_types = frozenset({"numerical"})

    def _score(self, reference: Values, current: Values, column_type: str) -> tuple[float, None]:
        norm = max(float(np.std(reference)), 0.001)
        return wasserstein_1d(reference, current) / norm, None


def wasserstein_1d(u: Values, v: Values) -> float:
    """scipy.stats.wasserstein_distance for two 1-D samples, the same sum of |F_u - F_v| * dx.

    Sorted inputs (as ``prepare_column`` hands them over) cost a linear pass instead of the
    argsorts scipy does: the stable sort merges two sorted runs in one go.
    """
    u_sorted = np.sort(u, kind="stable")
    v_sorted = np.sort(v, kind="stable")
    both = np.sort(np.concatenate([u_sorted, v_sorted]), kind="stable")
    deltas = np.diff(both)
    u_cdf = np.searchsorted(u_sorted, both[:-1], side="right") / len(u_sorted)
    v_cdf = np.searchsorted(v_sorted, both[:-1], side="right") / len(v_sorted)
    return float(np.sum(np.abs(u_cdf - v_cdf) * deltas))


class JensenShannon(DriftTest):
    name = "jensenshannon"
    label = "Jensen-Shannon distance"
    kind = "distance"
    default_threshold = 0.1

    def _score(self, reference: Values, current: Values, column_type: str) -> tuple[float, None]:
        ref, cur = binned_shares(reference, current, column_type, fill_zeroes=False)
        return _jensen_shannon(ref, cur), None


def _jensen_shannon(p: NDArray[np.float64], q: NDArray[np.float64]) -> float:
    """scipy.spatial.distance.jensenshannon(p, q) (natural log), the same steps in numpy.

    The default tests (Wasserstein, Jensen-Shannon) need no scipy, and importing scipy.stats
    and scipy.spatial costs about 1.2 s of a drift run's start-up (more than the tests' work
    on 100k rows); the tests that call scipy import it when they run.
    """
    p = p / np.sum(p)
    q = q / np.sum(q)
    m = (p + q) / 2.0
    js = float(np.sum(_rel_entr(p, m))) + float(np.sum(_rel_entr(q, m)))
    return math.sqrt(js / 2.0)


def _rel_entr(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """scipy.special.rel_entr for shares: x*log(x/y) where x > 0, 0 where x == 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out: NDArray[np.float64] = np.where(x > 0, x * np.log(x / y), 0.0)
    return out


class PSI(DriftTest):
    name = "psi"
    label = "PSI"
    kind = "distance"
    default_threshold = 0.1
    major_threshold: ClassVar[float] = 0.25

    def _score(self, reference: Values, current: Values, column_type: str) -> tuple[float, None]:
        ref, cur = binned_shares(reference, current, column_type)
        return float(np.sum((ref - cur) * np.log(ref / cur))), None


class KullbackLeibler(DriftTest):
    name = "kl_div"
    label = "Kullback-Leibler divergence"
    kind = "distance"
    default_threshold = 0.1

    def _score(self, reference: Values, current: Values, column_type: str) -> tuple[float, None]:
        from scipy import stats  # see _jensen_shannon: imported when used

        ref, cur = binned_shares(reference, current, column_type)
        return float(stats.entropy(ref, cur)), None


class AndersonDarling(DriftTest):
    name = "anderson"
    label = "Anderson-Darling p-value"
    kind = "p_value"
    default_threshold = 0.1
    column_types = frozenset({"numerical"})
    inclusive = False

    def _score(self, reference: Values, current: Values, column_type: str) -> tuple[float, float]:
        from scipy import stats  # see _jensen_shannon: imported when used

        result = stats.anderson_ksamp([reference, current], variant="midrank")
        return float(result.statistic), float(result.pvalue)


class CramerVonMises(DriftTest):
    name = "cramer_von_mises"
    label = "Cramer-von Mises p-value"
    kind = "p_value"
    default_threshold = 0.1
    column_types = frozenset({"numerical"})

    def _score(self, reference: Values, current: Values, column_type: str) -> tuple[float, float]:
        from scipy import stats  # see _jensen_shannon: imported when used

        result = stats.cramervonmises_2samp(reference, current)
        return float(result.statistic), float(result.pvalue)


class Hellinger(DriftTest):
    name = "hellinger"
    label = "Hellinger distance"
    kind = "distance"
    default_threshold = 0.1

    def _score(self, reference: Values, current: Values, column_type: str) -> tuple[float, None]:
        if column_type == "categorical":
            ref_counts, cur_counts = _counts(reference, current)
            overlap = float(
                np.sum(np.sqrt((ref_counts / len(reference)) * (cur_counts / len(current))))
            )
        else:
            # Densities over Sturges bins of the distinct values, as Evidently computes them.
            edges = np.histogram_bin_edges(
                np.unique(np.concatenate([reference, current])).astype(np.float64), bins="sturges"
            )
            h1 = np.histogram(reference, bins=edges, density=True)[0]
            h2 = np.histogram(current, bins=edges, density=True)[0]
            width = (edges.max() - edges.min()) / (len(edges) - 1)
            overlap = float(np.sum(np.sqrt(h1 * h2)) * width)
        return math.sqrt(1 - min(max(overlap, 0.0), 1.0)), None


DRIFT_TESTS: dict[str, DriftTest] = {
    t.name: t
    for t in (
        KolmogorovSmirnov(),
        ChiSquare(),
        ZTest(),
        Wasserstein(),
        JensenShannon(),
        PSI(),
        KullbackLeibler(),
        AndersonDarling(),
        CramerVonMises(),
        Hellinger(),
    )
}


def get_drift_test(name: str) -> DriftTest:
    """The test called ``name``; an unknown name lists the known ones."""
    try:
        return DRIFT_TESTS[name]
    except KeyError:
        raise InvalidInput(
            f"{name!r} is not a drift test; expected one of {', '.join(sorted(DRIFT_TESTS))}",
            field="method",
        ) from None

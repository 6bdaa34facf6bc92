"""Sample data generated on the spot (no download): a credit-risk table for demos and tests.

``make_credit`` draws applicants from fixed distributions and a binary target ``default`` from
a logistic model of their features plus noise, so a simple model learns it (ROC AUC about 0.8)
but not perfectly. ``drift`` in [0, 1] moves several feature distributions (younger
applicants, lower incomes, higher debt, more late payments and unemployment), as production
data does, for drift monitoring demos; the target keeps the same dependence on the features.
``concept`` in [0, 1] changes that dependence instead (a downturn: debt and long terms weigh
more, age flips from protective to risky), so a model trained before it loses accuracy and
retraining on new data pays off. Both at 0 give the original data, draw for draw.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from modelcycle.errors import InvalidInput

__all__ = ["SAMPLES", "make_credit"]

_EMPLOYMENT = ["employed", "self_employed", "unemployed", "retired", "student"]
_EMPLOYMENT_P = np.array([0.62, 0.14, 0.08, 0.10, 0.06])
_EMPLOYMENT_RISK = np.array([0.0, 0.25, 1.0, -0.1, 0.45])
_HOME = ["rent", "mortgage", "own", "other"]
_HOME_P = np.array([0.40, 0.38, 0.17, 0.05])
_HOME_RISK = np.array([0.25, 0.0, -0.3, 0.2])
_PURPOSE = [
    "debt_consolidation",
    "credit_card",
    "home_improvement",
    "car",
    "medical",
    "education",
    "other",
]
_PURPOSE_P = np.array([0.30, 0.22, 0.12, 0.14, 0.07, 0.06, 0.09])
_PURPOSE_RISK = np.array([0.2, 0.1, -0.2, -0.15, 0.35, 0.1, 0.0])


def make_credit(
    n_rows: int, *, seed: int = 0, drift: float = 0.0, concept: float = 0.0
) -> pa.Table:
    """A credit-risk table of ``n_rows`` applicants: 11 features and the target ``default``.

    The same ``seed`` (and ``drift``, ``concept``) always gives the same table.
    """
    if not isinstance(n_rows, int) or isinstance(n_rows, bool) or n_rows < 1:
        raise InvalidInput(f"{n_rows!r} is not a row count; expected an integer >= 1", field="rows")
    if not 0.0 <= drift <= 1.0:
        raise InvalidInput(f"{drift!r} is outside [0, 1]", field="drift")
    if not 0.0 <= concept <= 1.0:
        raise InvalidInput(f"{concept!r} is outside [0, 1]", field="concept")
    rng = np.random.default_rng(seed)
    n = n_rows

    age = np.clip(np.round(rng.normal(44 - 8 * drift, 12, n)), 18, 85).astype(np.int64)
    employment_p = _EMPLOYMENT_P.copy()
    employment_p[2] += 0.10 * drift  # more unemployed
    employment_p[0] -= 0.10 * drift
    employment = rng.choice(len(_EMPLOYMENT), size=n, p=employment_p)
    base_income = rng.lognormal(np.log(52_000) - 0.25 * drift, 0.5, n)
    income_factor = np.array([1.0, 1.1, 0.35, 0.7, 0.3])[employment]
    income = np.round(base_income * income_factor * (0.8 + 0.01 * np.minimum(age, 60)), 2)
    home = rng.choice(len(_HOME), size=n, p=_HOME_P)
    purpose = rng.choice(len(_PURPOSE), size=n, p=_PURPOSE_P)
    debt_ratio = np.round(np.clip(rng.beta(2 + 1.5 * drift, 5, n), 0, 1), 4)
    credit_lines = rng.poisson(3 + age / 15).astype(np.int64)
    late_payments = rng.poisson(0.4 + 0.6 * drift + 0.8 * debt_ratio, n).astype(np.int64)
    loan_amount = np.round(rng.lognormal(np.log(12_000), 0.6, n) / 100) * 100
    loan_term = rng.choice(np.array([36, 60], dtype=np.int64), size=n, p=[0.7, 0.3])
    years_employed = np.where(
        np.isin(employment, [2, 4]), 0.0, np.round(rng.exponential(6, n).clip(0, age - 17), 1)
    )

    logit = (
        -2.2
        + 3.2 * (debt_ratio - 0.3)
        + 0.55 * late_payments
        - 0.9 * (np.log(income) - np.log(40_000))
        + 0.45 * (np.log(loan_amount) - np.log(12_000))
        - 0.025 * (age - 44)
        - 0.04 * years_employed
        + 0.25 * (loan_term == 60)
        + _EMPLOYMENT_RISK[employment]
        + _HOME_RISK[home]
        + _PURPOSE_RISK[purpose]
        + rng.normal(0, 0.6, n)  # what the features cannot explain
        + concept * (4.0 * (debt_ratio - 0.3) + 1.2 * (loan_term == 60) + 0.06 * (age - 44))
    )
    default = rng.random(n) < 1 / (1 + np.exp(-logit))

    # About 2% of incomes are not reported: real data has holes.
    income_missing = rng.random(n) < 0.02
    return pa.table(
        {
            "age": pa.array(age),
            "income": pa.array(income, mask=income_missing),
            "debt_ratio": pa.array(debt_ratio),
            "credit_lines": pa.array(credit_lines),
            "late_payments": pa.array(late_payments),
            "loan_amount": pa.array(loan_amount),
            "loan_term": pa.array(loan_term),
            "years_employed": pa.array(years_employed),
            "employment": pa.array([_EMPLOYMENT[i] for i in employment], pa.string()),
            "home_ownership": pa.array([_HOME[i] for i in home], pa.string()),
            "purpose": pa.array([_PURPOSE[i] for i in purpose], pa.string()),
            "default": pa.array(default.astype(np.int64)),
        }
    )


# name -> generator, for ``modelcycle data sample NAME``.
SAMPLES = {"credit": make_credit}

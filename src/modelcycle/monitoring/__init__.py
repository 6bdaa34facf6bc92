"""Monitoring: drift per column and per data set (Evidently-compatible defaults, robust mode)."""

from modelcycle.monitoring.drift import ColumnDrift, DriftReport, compute_drift
from modelcycle.monitoring.drift_tests import DRIFT_TESTS, DriftTest, TestOutcome, get_drift_test
from modelcycle.monitoring.policy import DriftPolicy, default_method
from modelcycle.monitoring.robust import benjamini_hochberg

__all__ = [
    "DRIFT_TESTS",
    "ColumnDrift",
    "DriftPolicy",
    "DriftReport",
    "DriftTest",
    "TestOutcome",
    "benjamini_hochberg",
    "compute_drift",
    "default_method",
    "get_drift_test",
]

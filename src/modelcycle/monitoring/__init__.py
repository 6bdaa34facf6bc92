"""Monitoring: drift per column and per data set (Evidently-compatible defaults, robust mode),
stored checks and their events, reports, performance from ground truth, scheduled checks."""

from modelcycle.monitoring.drift import ColumnDrift, DriftReport, compute_drift
from modelcycle.monitoring.drift_tests import DRIFT_TESTS, DriftTest, TestOutcome, get_drift_test
from modelcycle.monitoring.facade import Monitoring
from modelcycle.monitoring.performance import PerformanceReport, PerformanceWindow
from modelcycle.monitoring.policy import DriftPolicy, default_method
from modelcycle.monitoring.report import ColumnChart, chart_data, render_html, write_report
from modelcycle.monitoring.results import Debounce, DriftCheck, DriftRecord
from modelcycle.monitoring.robust import benjamini_hochberg

__all__ = [
    "DRIFT_TESTS",
    "ColumnChart",
    "ColumnDrift",
    "Debounce",
    "DriftCheck",
    "DriftPolicy",
    "DriftRecord",
    "DriftReport",
    "DriftTest",
    "Monitoring",
    "PerformanceReport",
    "PerformanceWindow",
    "TestOutcome",
    "benjamini_hochberg",
    "chart_data",
    "compute_drift",
    "default_method",
    "get_drift_test",
    "render_html",
    "write_report",
]

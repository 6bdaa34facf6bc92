"""Pipelines: steps wired into a DAG, runs with caching and resume, the built-in trainer.

Other parts use pipelines only through the names exported here.
"""

from modelcycle.pipelines._estimators import parse_value as parse_hyperparam
from modelcycle.pipelines.context import StepContext
from modelcycle.pipelines.facade import Pipelines, RunComparison
from modelcycle.pipelines.records import RunEnded
from modelcycle.pipelines.runner import PipelineRunner, cache_key
from modelcycle.pipelines.spec import Pipeline, Step, load_pipeline, step
from modelcycle.pipelines.tabular_trainer import (
    ALGORITHMS,
    TABULAR_TRAINER,
    TABULAR_TRAINER_REF,
    TASKS,
)

__all__ = [
    "ALGORITHMS",
    "TABULAR_TRAINER",
    "TABULAR_TRAINER_REF",
    "TASKS",
    "Pipeline",
    "PipelineRunner",
    "Pipelines",
    "RunComparison",
    "RunEnded",
    "Step",
    "StepContext",
    "cache_key",
    "load_pipeline",
    "parse_hyperparam",
    "step",
]

"""Pipeline modules the tests write into a workspace and import by reference.

A module of its own (not conftest.py) so ``import`` never picks another folder's conftest.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

DIAMOND = """
from modelcycle.pipelines import Pipeline, step


@step
def numbers(n):
    return list(range(n))


@step
def doubled(numbers):
    return [x * 2 for x in numbers]


@step
def squared(numbers):
    return [x * x for x in numbers]


@step
def total(doubled, squared, ctx):
    print("adding", len(doubled), "numbers")
    ctx.log_metric("total", sum(doubled) + sum(squared))
    return sum(doubled) + sum(squared)


# Listed out of order on purpose: the wiring decides the order.
pipe = Pipeline("diamond", [total, doubled, squared, numbers], params={"n": 5})
"""

FLAKY = """
import logging
import os

from modelcycle.pipelines import Pipeline, step


@step(cache=False)
def prepare(n):
    print("preparing", n)
    return list(range(n))


@step
def explode(prepare):
    logging.getLogger("flaky").warning("about to check")
    if os.environ.get("MC_TEST_FAIL") == "1":
        raise RuntimeError("boom in explode")
    return sum(prepare)


@step
def report(explode, ctx):
    ctx.log_metric("sum", explode)
    return explode


pipe = Pipeline("flaky", [prepare, explode, report], params={"n": 4})
"""

SLOW = """
import time

from modelcycle.pipelines import Pipeline, step


@step
def first():
    return 1


@step
def sleepy(first):
    print("sleeping", flush=True)
    time.sleep(90)
    return first


pipe = Pipeline("slow", [first, sleepy])
"""


def write_module(root: Path, name: str, source: str) -> Path:
    path = root / f"{name}.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path

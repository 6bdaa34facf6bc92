"""Issue 13 item 14: `runs compare` takes 2 to 10 runs and warns when their metrics come from
different holdouts."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
from _pipeline_modules import DIAMOND, write_module

from modelcycle import Workspace
from modelcycle.datasets import make_credit


def test_compare_takes_two_to_ten_runs(workspace: Workspace, cli: Any) -> None:
    write_module(workspace.root, "mc_diamond", DIAMOND)
    ids = [
        workspace.pipelines.run("mc_diamond:pipe", params={"n": n}, progress=False).id
        for n in range(11)
    ]
    one = cli("runs", "compare", ids[0])
    assert one.returncode == 2
    assert "2 to 10 runs, got 1" in one.stderr
    eleven = cli("runs", "compare", *ids)
    assert eleven.returncode == 2
    assert "2 to 10 runs, got 11" in eleven.stderr
    ten = json.loads(cli("runs", "compare", *ids[:10], "--json", check=True).stdout)
    assert ten["runs"] == ids[:10]
    assert ten["metrics"]["total"] == [float(n * (n - 1) + (n - 1) * n * (2 * n - 1) // 6)
                                       for n in range(10)]  # fmt: skip
    assert ten["warnings"] == []  # no holdouts anywhere: nothing to compare them on
    table = cli("runs", "compare", *ids[:3], check=True)
    for run_id in ids[:3]:
        assert run_id in table.stdout
    twice = cli("runs", "compare", ids[0], ids[0])
    assert twice.returncode == 2
    assert "more than once" in twice.stderr


def test_compare_warns_when_holdouts_differ(workspace: Workspace, cli: Any) -> None:
    first = make_credit(240, seed=1)
    workspace.datasets.add("credit", first)
    a = workspace.pipelines.train("credit@1", "default", model="logreg", progress=False)
    b = workspace.pipelines.train("credit@1", "default", model="linear", progress=False)
    # "Append this month's data": a new version, so a new holdout.
    workspace.datasets.add("credit", pa.concat_tables([first, make_credit(120, seed=2)]))
    c = workspace.pipelines.train("credit@2", "default", model="logreg", progress=False)
    assert [r.status for r in (a, b, c)] == ["succeeded"] * 3

    same = cli("runs", "compare", a.id, b.id, check=True)
    assert "warning" not in same.stderr
    assert "credit-holdout@1" in same.stdout

    differ = cli("runs", "compare", a.id, b.id, c.id, check=True)
    assert "warning" in differ.stderr
    assert "different holdouts" in differ.stderr
    assert "credit-holdout@1" in differ.stderr
    assert "credit-holdout@2" in differ.stderr

    data = json.loads(cli("runs", "compare", a.id, c.id, "--json", check=True).stdout)
    assert [h["ref"] for h in data["holdouts"][a.id]] == ["credit-holdout@1"]
    assert [h["ref"] for h in data["holdouts"][c.id]] == ["credit-holdout@2"]
    one = workspace.datasets.version("credit-holdout@1").sha256
    two = workspace.datasets.version("credit-holdout@2").sha256
    assert (data["holdouts"][a.id][0]["sha256"], data["holdouts"][c.id][0]["sha256"]) == (one, two)
    assert len(data["warnings"]) == 1
    assert "different holdouts" in data["warnings"][0]

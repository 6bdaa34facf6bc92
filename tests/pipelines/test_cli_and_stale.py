"""The CLI in a real subprocess, and runs whose process died (SIGKILL) or stopped beating."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from _pipeline_modules import DIAMOND, FLAKY, SLOW, write_module

from modelcycle import Workspace
from modelcycle.pipelines import Pipeline, Pipelines, RunEnded, step


def test_pipeline_run_runs_show_and_compare(workspace: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    write_module(workspace.root, "mc_diamond", DIAMOND)
    with open(workspace.root / "modelcycle.toml", "a") as fh:
        fh.write('\n[pipelines]\ndiamond = "mc_diamond:pipe"\n')
    first = cli("pipeline", "run", "diamond", "--param", "n=3", check=True)
    assert "succeeded" in first.stdout
    second = cli("pipeline", "run", "mc_diamond:pipe", "-p", "n=4", "--no-cache", check=True)
    assert "cached" not in second.stdout
    listed = [
        json.loads(line) for line in cli("runs", "list", "--json", check=True).stdout.splitlines()
    ]
    assert [r["status"] for r in listed] == ["succeeded"] * 2
    newest, oldest = listed[0]["id"], listed[-1]["id"]
    shown = json.loads(cli("runs", "show", newest, "--json", check=True).stdout)
    assert shown["params"] == {"n": 4}
    assert shown["metrics"] == {"total": 26.0}
    assert [s["name"] for s in shown["steps"]][-1] == "total"
    human = cli("runs", "show", newest[:6], check=True).stdout
    assert "total" in human
    assert "scikit-learn" in human
    table = cli("runs", "compare", oldest, newest, check=True).stdout
    assert "total" in table
    assert "11" in table
    assert "26" in table
    assert "*" in table
    bad = cli("pipeline", "run", "mc_diamond:pipe", "--param", "m=1")
    assert bad.returncode == 2
    assert "no parameter 'm'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_failed_run_exits_1_and_resumes_from_the_cli(workspace: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    write_module(workspace.root, "mc_flaky", FLAKY)
    failed = cli("pipeline", "run", "mc_flaky:pipe", env={"MC_TEST_FAIL": "1"})
    assert failed.returncode == 1
    assert "boom in explode" in failed.stderr
    run_id = failed.stderr.split("modelcycle pipeline resume ")[1].split()[0]
    resumed = cli("pipeline", "resume", run_id, check=True)
    assert "succeeded" in resumed.stdout
    assert f"(from run {run_id})" in resumed.stdout
    logs = cli("runs", "logs", run_id, "--step", "explode", check=True).stdout
    assert "boom in explode" in logs


def test_sigkilled_run_is_listed_as_failed_stale(workspace: Workspace) -> None:
    write_module(workspace.root, "mc_slow", SLOW)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    env.update({"MODELCYCLE_ACTOR": "tester", "PYTHONDONTWRITEBYTECODE": "1"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelcycle", "pipeline", "run", "mc_slow:pipe"],
        cwd=workspace.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        run = None
        while time.monotonic() < deadline:
            runs = workspace.pipelines.runs()
            if runs:
                run = workspace.pipelines.get_run(runs[0].id)
                if any(s.name == "sleepy" and s.status == "running" for s in run.steps):
                    break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        else:
            pytest.fail("the run never reached its sleeping step")
        assert run is not None
        assert run.status == "running"
        assert run.pid == proc.pid
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    listed = subprocess.run(
        [sys.executable, "-m", "modelcycle", "runs", "list", "--json"],
        cwd=workspace.root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["id"] == run.id
    assert row["status"] == "failed"
    assert row["failure"] == "stale"
    assert f"process {proc.pid}" in row["error"]
    after = workspace.pipelines.get_run(run.id)
    assert after.step("sleepy").status == "failed"
    assert after.step("first").status == "succeeded"
    # It can be resumed like any failed run: the first step is reused.
    write_module(workspace.root, "mc_slow", SLOW.replace("time.sleep(90)", "time.sleep(0)"))
    resumed = workspace.pipelines.resume(run.id, progress=False)
    assert resumed.ok
    assert resumed.step("first").status == "cached"


def test_a_run_without_heartbeat_is_stale_and_stops(workspace: Workspace) -> None:
    # Another observer with a zero timeout sees the running run's heartbeat as too old, as
    # one on another host would after stale_after seconds of silence.
    observer = Pipelines(
        workspace.metadata, workspace.artifacts, "observer", workspace.root, stale_after=0.0
    )
    seen: list[str] = []

    @step
    def watch() -> int:
        time.sleep(0.05)
        seen.extend(r.status for r in observer.runs())
        return 1

    with pytest.raises(RunEnded, match="no longer running"):
        workspace.pipelines.run(Pipeline("watched", [watch]), progress=False)
    (run,) = workspace.pipelines.runs()
    assert seen == ["failed"]
    assert run.status == "failed"
    assert run.failure == "stale"
    assert "no heartbeat" in (run.error or "")

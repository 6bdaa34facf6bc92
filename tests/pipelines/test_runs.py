"""Running pipelines through ``ws.pipelines``: records, caching, failure and resume, audit."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from _pipeline_modules import DIAMOND, FLAKY, write_module

from modelcycle import Conflict, InvalidInput, Workspace
from modelcycle.pipelines import Pipeline, step
from modelcycle.store import AuditFilter


def _statuses(run) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {s.name: s.status for s in run.steps}


def test_diamond_run_records_everything(workspace: Workspace) -> None:
    write_module(workspace.root, "mc_diamond", DIAMOND)
    run = workspace.pipelines.run("mc_diamond:pipe", params={"n": 4}, progress=False)
    assert run.ok, run.error
    # 0..3 doubled (12) plus squared (14)
    assert workspace.pipelines.output(run.id, "total") == 26
    assert run.metrics == {"total": 26.0}
    assert run.params == {"n": 4}
    assert run.ref == "mc_diamond:pipe"
    assert next(s.name for s in run.steps) == "numbers"
    assert [s.name for s in run.steps][-1] == "total"
    assert set(_statuses(run).values()) == {"succeeded"}
    for s in run.steps:
        assert s.duration_s is not None
        assert s.duration_s >= 0
        assert len(s.source_sha256) == 64
        assert s.cache_key
        assert len(s.cache_key) == 64
    total = run.step("total")
    assert total.inputs == {
        "doubled": run.step("doubled").outputs["doubled"]["sha256"],
        "squared": run.step("squared").outputs["squared"]["sha256"],
    }
    assert run.step("numbers").params == {"n": 4}
    assert run.code["steps"]["total"] == total.source_sha256
    assert run.environment["python"]
    packages = run.environment["packages"]
    for dist in ("modelcycle", "numpy", "pyarrow", "pandas", "scikit-learn"):
        assert packages[dist], dist
    assert run.started_at <= (run.finished_at or "")
    assert "adding 4 numbers" in workspace.pipelines.logs(run.id, "total")
    # Audited: started, each step started and finished, finished; the chain holds.
    actions = [e.action for e in workspace.audit.events(AuditFilter(subject=f"run:{run.id}"))]
    assert actions[0] == "run.started"
    assert actions[-1] == "run.finished"
    assert actions.count("run.step_finished") == 4
    assert workspace.audit.verify().ok
    listed = workspace.pipelines.runs()
    assert [r.id for r in listed] == [run.id]
    assert workspace.pipelines.get_run(run.id[:6]).id == run.id


def test_changed_source_reruns_only_that_step_and_what_its_output_changes(
    workspace: Workspace,
) -> None:
    root = workspace.root
    write_module(root, "mc_diamond", DIAMOND)
    first = workspace.pipelines.run("mc_diamond:pipe", progress=False)
    again = workspace.pipelines.run("mc_diamond:pipe", progress=False)
    assert set(_statuses(again).values()) == {"cached"}
    assert {s.cached_from for s in again.steps} == {first.id}
    assert again.metrics == first.metrics  # metrics of cached steps are carried over

    # Same output, other code: squared re-executes; total's inputs are unchanged: cached.
    write_module(root, "mc_diamond", DIAMOND.replace("x * x for", "x**2 for"))
    same_out = workspace.pipelines.run("mc_diamond:pipe", progress=False)
    assert _statuses(same_out) == {
        "numbers": "cached",
        "doubled": "cached",
        "squared": "succeeded",
        "total": "cached",
    }
    # Different output: squared and total re-execute, the rest stays cached.
    write_module(root, "mc_diamond", DIAMOND.replace("x * x for", "x * x + 1 for"))
    changed = workspace.pipelines.run("mc_diamond:pipe", progress=False)
    assert _statuses(changed) == {
        "numbers": "cached",
        "doubled": "cached",
        "squared": "succeeded",
        "total": "succeeded",
    }
    assert workspace.pipelines.output(changed.id, "total") == 20 + 30 + 5
    # Another parameter value is another key for the steps that receive it and after.
    other_n = workspace.pipelines.run("mc_diamond:pipe", params={"n": 6}, progress=False)
    assert set(_statuses(other_n).values()) == {"succeeded"}
    # --no-cache executes everything.
    forced = workspace.pipelines.run("mc_diamond:pipe", no_cache=True, progress=False)
    assert set(_statuses(forced).values()) == {"succeeded"}
    assert forced.step("total").outputs == changed.step("total").outputs


def test_failure_stores_the_traceback_and_resume_reuses_finished_steps(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(workspace.root, "mc_flaky", FLAKY)
    monkeypatch.setenv("MC_TEST_FAIL", "1")
    failed = workspace.pipelines.run("mc_flaky:pipe", progress=False)
    assert failed.status == "failed"
    assert failed.failure == "error"
    assert "RuntimeError: boom in explode" in (failed.error or "")
    assert "Traceback" in (failed.error or "")
    assert _statuses(failed) == {"prepare": "succeeded", "explode": "failed"}
    step_error = failed.step("explode").error or ""
    assert 'mc_flaky.py", line' in step_error
    logs = workspace.pipelines.logs(failed.id)
    assert "preparing 4" in logs
    assert "WARNING flaky: about to check" in logs
    assert "boom in explode" in logs
    failed_events = workspace.audit.events(AuditFilter(action="run.failed"))
    assert [e.subject for e in failed_events] == [f"run:{failed.id}"]

    monkeypatch.delenv("MC_TEST_FAIL")
    resumed = workspace.pipelines.resume(failed.id, progress=False)
    assert resumed.ok, resumed.error
    assert resumed.resumed_from == failed.id
    assert resumed.id != failed.id
    # prepare has cache=False, yet resume reuses what the failed run finished.
    assert _statuses(resumed) == {
        "prepare": "cached",
        "explode": "succeeded",
        "report": "succeeded",
    }
    assert resumed.step("prepare").cached_from == failed.id
    assert resumed.metrics == {"sum": 6.0}
    with pytest.raises(Conflict, match="nothing to resume"):
        workspace.pipelines.resume(resumed.id)
    # Outside a resume, cache=False still executes the step.
    plain = workspace.pipelines.run("mc_flaky:pipe", progress=False)
    assert plain.step("prepare").status == "succeeded"
    assert plain.step("explode").status == "cached"


def test_runs_compare_shows_params_and_metrics_side_by_side(workspace: Workspace) -> None:
    write_module(workspace.root, "mc_diamond", DIAMOND)
    a = workspace.pipelines.run("mc_diamond:pipe", params={"n": 2}, progress=False)
    b = workspace.pipelines.run("mc_diamond:pipe", params={"n": 3}, progress=False)
    cmp = workspace.pipelines.compare(a.id, b.id)
    assert cmp.params == {"n": (2, 3)}
    assert cmp.metrics == {"total": (3.0, 11.0)}


def test_object_pipelines_bad_params_and_outputs(workspace: Workspace) -> None:
    @step
    def thing(size: int = 2) -> object:
        return {1: "int keys are not JSON"}  # stored with pickle, read back equal

    pipe = Pipeline("objects", [thing])
    run = workspace.pipelines.run(pipe, params={"size": 3}, progress=False)
    assert run.ok
    assert run.ref is None
    assert run.step("thing").outputs["thing"]["format"] == "pickle"
    assert workspace.pipelines.output(run.id, "thing") == {1: "int keys are not JSON"}
    with pytest.raises(InvalidInput, match="no parameter 'sise'"):
        workspace.pipelines.run(pipe, params={"sise": 3})
    with pytest.raises(InvalidInput, match="not JSON data"):
        workspace.pipelines.run(pipe, params={"size": object()})
    with pytest.raises(InvalidInput, match="takes no parameter 'data'"):
        workspace.pipelines.run(pipe, data="anything")
    assert len(workspace.pipelines.runs()) == 1  # refused runs leave no record


def _git(root: Path, *args: str) -> bytes:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout


def test_code_version_from_a_real_git_repository(workspace: Workspace) -> None:
    root = workspace.root
    write_module(root, "mc_diamond", DIAMOND)
    (root / ".gitignore").write_text(".modelcycle/\n__pycache__/\n")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "pipeline")
    head = _git(root, "rev-parse", "HEAD").decode().strip()
    clean = workspace.pipelines.run("mc_diamond:pipe", progress=False)
    assert clean.code["commit"] == head
    assert clean.code["dirty"] is False
    assert clean.code["diff_sha256"] is None
    assert Path(clean.code["repository"]).resolve() == root.resolve()

    with open(root / "mc_diamond.py", "a") as fh:
        fh.write("# a local change\n")
    dirty = workspace.pipelines.run("mc_diamond:pipe", progress=False)
    diff = _git(root, "diff", "HEAD", "--no-color", "--no-ext-diff", "--binary")
    assert dirty.code["commit"] == head
    assert dirty.code["dirty"] is True
    assert dirty.code["diff_sha256"] == hashlib.sha256(diff).hexdigest()
    # The comment is outside every step: their sources, hence the cache, are unchanged.
    assert set(_statuses(dirty).values()) == {"cached"}

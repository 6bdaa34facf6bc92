"""What a job does. Each action is a small function of the stages and the job's parameters.

Actions must be safe to run twice for one job (a worker can die after the effect but before
recording it; the lease then expires and another worker runs the job again). Each action
therefore first looks for the effect a previous attempt of the same job already had, by the
job's natural key, and returns that instead of repeating it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from modelcycle.entities import Job
from modelcycle.errors import Conflict, InvalidInput, NotFound

__all__ = ["ACTIONS", "Stages"]


class Stages(Protocol):
    """The parts an action may use (the workspace provides them)."""

    @property
    def pipelines(self) -> Any: ...

    @property
    def registry(self) -> Any: ...

    @property
    def datasets(self) -> Any: ...

    @property
    def monitoring(self) -> Any: ...

    @property
    def deploy(self) -> Any: ...

    @property
    def audit(self) -> Any: ...


Action = Callable[[Stages, Job], dict[str, Any]]


def _require(params: Mapping[str, Any], *names: str, job: Job) -> None:
    missing = [n for n in names if params.get(n) in (None, "")]
    if missing:
        raise InvalidInput(f"the {job.kind} action needs {missing[0]!r}", field="job.params")


def train(stages: Stages, job: Job) -> dict[str, Any]:
    """The built-in tabular trainer on ``data`` (NAME[@V]) for ``target``."""
    p = job.params
    _require(p, "data", "target", job=job)
    data_ref = stages.datasets.version(str(p["data"])).ref
    wanted = {"data": data_ref, "target": p["target"], "seed": int(p.get("seed", 0)),
              "algorithm": p.get("model", "hgb")}  # fmt: skip
    # An earlier attempt of this job may have trained already: the same parameters,
    # succeeded after the job was created.
    for run in stages.pipelines.runs(pipeline="tabular-trainer", status="succeeded"):
        if run.started_at >= job.created_at and all(
            run.params.get(k) == v for k, v in wanted.items()
        ):
            return {"run": run.id, "models": list(run.models), "reused": True}
    run = stages.pipelines.train(
        data_ref,
        str(p["target"]),
        model=str(p.get("model", "hgb")),
        seed=int(p.get("seed", 0)),
        register=p.get("register"),
        progress=False,
    )
    if run.status != "succeeded":
        raise RuntimeError(f"run {run.id} {run.status}: {run.error or ''}".strip())
    return {"run": run.id, "models": list(run.models), "reused": False}


def pipeline(stages: Stages, job: Job) -> dict[str, Any]:
    """Run the pipeline ``ref`` (``module:attr`` or a name under [pipelines]) with ``params``."""
    p = job.params
    _require(p, "ref", job=job)
    params = dict(p.get("params", {}))
    for run in stages.pipelines.runs(status="succeeded"):
        if (
            run.ref == p["ref"]
            and run.started_at >= job.created_at
            and all(run.params.get(k) == v for k, v in params.items())
        ):
            return {"run": run.id, "models": list(run.models), "reused": True}
    run = stages.pipelines.run(str(p["ref"]), params=params, data=p.get("data"), progress=False)
    if run.status != "succeeded":
        raise RuntimeError(f"run {run.id} {run.status}: {run.error or ''}".strip())
    return {"run": run.id, "models": list(run.models), "reused": False}


def promote(stages: Stages, job: Job) -> dict[str, Any]:
    """Move ``to`` (default champion) to ``ref`` through the promotion gate."""
    from modelcycle.registry import request_origin  # here: loading rules skips the registry

    p = job.params
    _require(p, "ref", job=job)
    to = str(p.get("to", "champion"))
    candidate = stages.registry.get(str(p["ref"]))
    if to in candidate.aliases:  # an earlier attempt promoted it already
        return {"promoted": True, "version": candidate.ref, "reused": True}
    try:
        force = bool(p.get("force", False))
        # A forced move says why: the rule's own reason, else which rule and job made it.
        reason = p.get("reason") or (f"rule {job.rule} (job {job.id})" if force else None)
        with request_origin(f"rule:{job.rule}" if job.rule else f"job:{job.id}"):
            result = stages.registry.promote(candidate.ref, to=to, force=force, reason=reason)
    except Conflict as refused:
        # A gate saying no is an answer, not a failure to retry.
        return {"promoted": False, "version": candidate.ref, "reason": str(refused)}
    if result.request is not None:
        # A [promotion.*] policy: the alias moves when the approval lands (its own event then
        # starts whatever follows the alias); a rerun finds the same pending request.
        return {"promoted": False, "status": "awaiting_approval", "version": candidate.ref,
                "request": result.request}  # fmt: skip
    return {"promoted": True, "version": candidate.ref, "detail": str(result)}


def ingest(stages: Stages, job: Job) -> dict[str, Any]:
    """Add ``path`` as a version of data set ``dataset`` (a no-op when the content is known)."""
    p = job.params
    _require(p, "dataset", "path", job=job)
    result = stages.datasets.ingest(str(p["dataset"]), str(p["path"]))
    return {"version": result.version.ref, "created": result.created}


def note(stages: Stages, job: Job) -> dict[str, Any]:
    """Write an operator note (a notification stand-in; handy for testing rules)."""
    p = job.params
    _require(p, "text", job=job)
    marker = f"[job {job.id}] "
    for event in stages.audit.events():
        if event.action == "audit.note" and str(event.payload.get("text", "")).startswith(marker):
            return {"seq": event.seq, "reused": True}
    event = stages.audit.note(marker + str(p["text"]), subject=str(p.get("subject", "workspace")))
    return {"seq": event.seq, "reused": False}


def deploy(stages: Stages, job: Job) -> dict[str, Any]:
    """Deploy ``ref`` to ``endpoint`` (blue/green with a smoke test and automatic rollback)."""
    p = job.params
    _require(p, "ref", "endpoint", job=job)
    version = stages.registry.get(str(p["ref"]))
    active = stages.deploy.active(str(p["endpoint"]))
    if (
        active is not None
        and (active.model_name, active.model_version) == (version.name, version.version)
        and stages.deploy.is_running(active)
    ):
        return {"deployment": active.id, "url": active.url, "reused": True}
    done = stages.deploy.deploy(version.ref, endpoint=str(p["endpoint"]))
    return {"deployment": done.id, "url": done.url, "version": version.ref, "reused": False}


def monitor(stages: Stages, job: Job) -> dict[str, Any]:
    """A drift check of ``model`` over the last ``window`` of its prediction log (stored, and
    ``drift.detected`` when it drifted). Each run is its own check: nothing to reuse."""
    p = job.params
    _require(p, "model", job=job)
    try:
        stages.registry.get(str(p["model"]))
    except NotFound:
        # Nothing deployed under that name yet (a schedule can start before the first model).
        return {"model": str(p["model"]), "status": "no such model yet"}
    check = stages.monitoring.drift(model=str(p["model"]), window=str(p.get("window", "1h")))
    report = check.report
    return {
        "model": str(p["model"]),
        "dataset_drift": bool(report.dataset_drift),
        "share_drifted": float(report.share_drifted),
        "status": report.status,
        "detected": check.detected,
        "check": check.id,
    }


def fail(stages: Stages, job: Job) -> dict[str, Any]:
    """Always fails: for exercising retries and dead jobs."""
    raise RuntimeError(str(job.params.get("message", "this action always fails")))


ACTIONS: dict[str, Action] = {
    "train": train,
    "pipeline": pipeline,
    "promote": promote,
    "ingest": ingest,
    "note": note,
    "monitor": monitor,
    "deploy": deploy,
    "fail": fail,
}

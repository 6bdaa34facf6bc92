"""``modelcycle demo``: the whole loop, run by rules and a worker, narrated as it happens.

data v1 arrives -> trained -> registered -> promoted -> bundled and deployed locally ->
real-time requests (v2 and MLflow protocols) and a batch scoring job -> drifted production
traffic -> drift detected on schedule -> retrained on data v2 -> gate passes -> promoted ->
blue/green redeploy -> the audit trail as a timeline, verified.

Nothing here calls a stage to *do* the loop: the demo only drops files, sends traffic and
waits; the rules in the workspace's ``modelcycle.toml`` and a background worker do the rest.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.table import Table

from modelcycle.automations import Worker
from modelcycle.errors import Forbidden, ModelcycleError, OperationFailed
from modelcycle.store.tokens import TokenStore
from modelcycle.workspace import Workspace, init_workspace

__all__ = ["DemoFailed", "run_demo"]

T = TypeVar("T")

RULES = """
# --- added by `modelcycle demo`: the loop, declared --------------------------------------------
[automations]
backoff_seconds = 1

[monitoring.drift]
drift_share = 0.3        # this team calls the data set drifted when 30% of its columns are

[[sources]]
dataset = "credit"
path = "incoming/credit.csv"

[[rules]]
name = "train-first-model"
on = "dataset.version_created"
where = { subject_name = "credit", version = 1 }
do = "train"
with = { data = "{subject_ref}", target = "default"{model} }

[[rules]]
name = "retrain-on-drift"
on = "drift.detected"
where = { subject_name = "credit" }
do = "train"
with = { data = "credit", target = "default"{model} }
debounce = "1h"

[[rules]]
name = "promote-new-version"
on = "model.version_registered"
where = { subject_name = "credit" }
do = "promote"
with = { ref = "{subject_ref}", to = "champion" }

[[rules]]
name = "deploy-champion"
on = "model.alias_moved"
where = { subject_name = "credit", alias = "champion" }
do = "deploy"
# By alias, resolved when the job runs: a rollback then moves champion back with the traffic.
with = { ref = "credit@champion", endpoint = "credit" }

[[schedules]]
name = "watch-credit"
every = "{every}"
do = "monitor"
with = { model = "credit@champion", window = "1h" }
"""


# `modelcycle demo --with-approval`: champion moves only when a second identity approves.
APPROVAL_POLICY = """
[promotion.champion]
approvals = 1
approvers = ["risk-officer"]    # the second identity that signs off
separation_of_duties = true     # whoever asked, or registered the version, may not approve
expires_after = "72h"
"""
APPROVER = "risk-officer"


class DemoFailed(OperationFailed):
    """A step of the demo did not happen in time; the message says which."""


def _wait(what: str, check: Callable[[], T | None], timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoFailed(f"{what}: not done after {timeout:.0f} s (see `modelcycle jobs list`)")
        time.sleep(0.25)


def _post(url: str, body: Any) -> tuple[str | None, Any]:
    req = urllib.request.Request(  # noqa: S310 - the demo's own servers on 127.0.0.1
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - 127.0.0.1 only
        return r.headers.get("X-Model-Version"), json.loads(r.read())


def run_demo(
    path: Path,
    console: Console,
    *,
    rows: int = 6000,
    every: str = "5s",
    with_approval: bool = False,
    model: str = "hgb",
) -> None:
    """Run the loop in a new workspace at ``path`` (``with_approval``: under a promotion policy,
    each promotion stops at a request that a second identity approves; ``model``: the trainer's
    algorithm, e.g. ``xgboost``)."""
    started = time.monotonic()

    def say(text: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f}s[/]  {text}", highlight=False)

    ws, _ = init_workspace(path)
    (ws.root / "modelcycle.toml").write_text(
        (ws.root / "modelcycle.toml").read_text()
        + RULES.replace("{every}", every).replace(
            "{model}", "" if model == "hgb" else f', model = "{model}"'
        )
        + (APPROVAL_POLICY if with_approval else "")
    )
    ws.close()
    ws = Workspace(ws.root)
    policy = ", 1 promotion policy (champion: 1 approval)" if with_approval else ""
    say(f"workspace [bold]{ws.root}[/] with 4 rules, 1 schedule, 1 watched source{policy}")

    worker: Worker = Workspace(ws.root).automations.worker(poll_seconds=0.2, lease_seconds=120)
    jobs_seen: set[str] = set()

    def narrate(job: Any) -> None:
        if job.id in jobs_seen and job.state != "succeeded":
            return
        jobs_seen.add(job.id)
        result = ", ".join(f"{k}={v}" for k, v in (job.result or {}).items() if k != "detail")
        say(f"  [cyan]worker[/] {job.kind} ({job.rule or 'manual'}): {job.state} {result}")

    thread = threading.Thread(
        target=worker.run, kwargs={"on_job": narrate}, name="demo-worker", daemon=True
    )
    thread.start()
    try:
        _loop(ws, say, rows=rows, approve=_approver(ws, say) if with_approval else None)
    finally:
        worker.stop()
        thread.join(timeout=120)
        for d in ws.deploy.list():
            if d.status == "active" and ws.deploy.is_running(d):
                ws.deploy.stop(d.endpoint)
        say("deployments stopped")
    _timeline(ws, console)
    from modelcycle.interfaces.demo_evidence import sign_evidence

    sign_evidence(ws, say)
    # A reader token to look around in the console; only its hash is stored, as for any token.
    _, reader_token = TokenStore(ws.metadata, ws.actor).create("demo-reader", "reader")
    report = ws.audit.verify()
    if not report.ok:
        raise DemoFailed(f"the audit chain does not verify: {report.problem}")
    say(
        f"[green]audit chain verified[/]: {report.events} events, head {report.head.hash[:16]}; "
        f"workspace left in {ws.root}"
    )
    say(
        f"console and API: [bold]cd {ws.root} && modelcycle server[/], then open "
        f"[bold]http://127.0.0.1:8765/[/] and sign in with the reader token {reader_token}"
    )
    ws.close()


def _loop(
    ws: Workspace,
    say: Callable[[str], None],
    *,
    rows: int,
    approve: Callable[[str], None] | None = None,
) -> None:
    from modelcycle.datasets import make_credit

    incoming = ws.root / "incoming"
    incoming.mkdir()
    make_credit(rows, seed=1).to_pandas().to_csv(incoming / "credit.csv", index=False)
    say("[bold]1.[/] October's applications land in incoming/credit.csv (watched source)")
    _wait("credit@1 ingested", lambda: ws.datasets.list("credit"), 60)
    say("   -> data set [bold]credit@1[/] versioned; rule train-first-model fires")
    v1 = _wait("credit/1 registered", lambda: _version(ws, "credit/1"), 120)
    say(f"   -> [bold]credit/1[/] registered, holdout roc_auc {v1.metrics.get('roc_auc', 0):.4f}")
    if approve is not None:
        approve("credit/1")
    _wait("credit/1 promoted", lambda: "champion" in ws.registry.get("credit/1").aliases, 60)
    say("   -> promoted to [bold]champion[/] (first promotion); rule deploy-champion fires")
    d1 = _wait("credit/1 deployed", lambda: _serving(ws, 1), 180)
    say(
        f"   -> deployed locally (blue/green, smoke-tested) at [bold]{d1.url}[/] (the endpoint's "
        f"stable URL; its router forwards to {d1.backend_url})"
    )

    say("[bold]2.[/] production traffic")
    sample = make_credit(40, seed=7).drop_columns(["default"]).to_pylist()
    meta = json.loads(urllib.request.urlopen(f"{d1.url}/v2/models/credit", timeout=10).read())  # noqa: S310
    dtypes = {i["name"]: i["datatype"] for i in meta["inputs"]}
    row = next(r for r in sample if all(r[k] is not None for k in dtypes))
    v2_body = {
        "id": "demo-1",
        "inputs": [
            {"name": k, "shape": [1], "datatype": t, "data": [row[k]]} for k, t in dtypes.items()
        ],
        "parameters": {"probabilities": True},
    }
    version, answer = _post(f"{d1.url}/v2/models/credit/infer", v2_body)
    say(f"   v2 infer -> version {version}: {json.dumps(answer['outputs'])[:110]}")
    version, answer = _post(f"{d1.url}/invocations", {"dataframe_records": sample[:5]})
    say(f"   MLflow /invocations -> version {version}: {answer}")
    batch_in = ws.root / "applications-batch.parquet"
    import pyarrow.parquet as pq

    pq.write_table(make_credit(20_000, seed=8).drop_columns(["default"]), batch_in)
    job = ws.batch.score("credit@champion", batch_in, ws.root / "scored", workers=2)
    say(f"   batch job {job.id}: {job.rows_out} rows scored into scored/ ({job.status})")

    say("[bold]3.[/] a month later: a downturn moves the applicants and what predicts default")
    drifted = make_credit(rows, seed=2, drift=0.6, concept=0.8)
    drifted.to_pandas().to_csv(incoming / "credit.csv", index=False)
    _wait("credit@2 ingested", lambda: len(ws.datasets.list("credit")) >= 2, 60)
    say("   November's labelled data lands: [bold]credit@2[/] versioned (no rule trains on it)")
    for start in range(0, 600, 50):
        chunk = drifted.slice(start, 50).drop_columns(["default"]).to_pylist()
        _post(f"{d1.url}/predict", {"rows": chunk})
    say("   600 of November's applications scored in production by credit/1")
    check = _wait("drift detected", lambda: _detected(ws), 60)
    say(
        f"   -> schedule watch-credit: drift detected on credit/1 "
        f"({check['share']:.0%} of columns); rule retrain-on-drift fires"
    )
    report = ws.root / "drift-report.html"
    ws.monitoring.drift(model="credit/1", window="1h", report=report, store=False)
    say(f"   -> drift report for the on-call engineer: [bold]{report}[/] (self-contained HTML)")
    v2 = _wait("credit/2 registered", lambda: _version(ws, "credit/2"), 180)
    auc = v2.metrics.get("roc_auc", 0)
    say(f"   -> [bold]credit/2[/] trained on {v2.datasets[0]}, holdout roc_auc {auc:.4f}")
    # Production keeps calling the stable URL while the worker redeploys behind it.
    traffic = _Traffic(f"{d1.url}/v2/models/credit/infer", v2_body).start()
    try:
        if approve is not None:
            approve("credit/2")
        _wait("the gate decided", lambda: _gate(ws), 120)
        gate = _gate(ws)
        say(f"   -> promotion gate on credit-holdout@2: {gate}")
        if "champion" in ws.registry.get("credit/2").aliases:
            _wait("credit/2 deployed", lambda: _serving(ws, 2), 180)
            _wait("an answer from credit/2", lambda: "2" in traffic.versions, 30)
    finally:
        traffic.stop()
    seen = " -> ".join(traffic.order) or "none"
    say(
        f"   client on {d1.url} during the redeploy: {traffic.sent} requests sent, "
        f"[bold]{traffic.failed} failed[/], versions seen {seen}"
    )
    if traffic.failed:
        raise DemoFailed(
            f"{traffic.failed} requests failed during the switch: {traffic.errors[:3]}"
        )
    if "champion" in ws.registry.get("credit/2").aliases:
        version, _ = _post(f"{d1.url}/predict", {"rows": sample[:1]})
        say(f"   -> blue/green redeploy: [bold]{d1.url}[/] now answers with version {version}")
    else:
        say("   -> the gate kept credit/1: nothing to redeploy")


def _approver(ws: Workspace, say: Callable[[str], None]) -> Callable[[str], None]:
    """Waits for the promotion of ``ref`` to stop at its request (or be refused by the gate),
    shows the requester being refused, then approves as the second identity."""

    def approve(ref: str) -> None:
        name, version = ref.split("/")
        found = _wait(f"{ref} at the approval gate", lambda: _request_or_refusal(ws, ref), 180)
        if found == "refused":
            return
        req = ws.approvals.get(found)
        gate = (
            f"gate passed ({req.gate['metric']} {req.gate['candidate']['score']:.4f} vs "
            f"{req.gate['champion']['score']:.4f}); "
            if req.gate
            else "first promotion, no gate; "
        )
        say(
            f"   -> [bold yellow]stopped at the approval gate[/]: {gate}promotion request "
            f"[bold]{req.id[:8]}[/] by {req.requested_by} ({req.origin}) waits for "
            f"{req.approvals_needed} approval by {APPROVER}; {name}@champion has not moved"
        )
        try:
            ws.approvals.approve(req.id)
        except Forbidden as refused:
            say(f"   {ws.actor} tries to approve it: [red]refused[/] ({refused})")
        done = ws.as_actor(APPROVER).approvals.approve(
            req.id, comment="figures and lineage checked"
        )
        say(
            f"   -> approved by [bold]{APPROVER}[/] (a second identity): {name}@champion moves to "
            f"version {version} in the approval's transaction ({done.state})"
        )

    return approve


def _request_or_refusal(ws: Workspace, ref: str) -> str | None:
    name, version = ref.split("/")
    for req in ws.approvals.list(name=name):
        if req.version == int(version):
            return req.id
    for e in ws.audit.events():
        if e.action == "model.promotion_refused" and e.subject == f"model:{ref}":
            return "refused"
    return None


class _Traffic:
    """A client thread calling the endpoint's stable URL until stopped, counting failures."""

    def __init__(self, url: str, body: Any) -> None:
        self.url, self.body = url, body
        self.sent = self.failed = 0
        self.versions: set[str] = set()
        self.order: list[str] = []  # versions in the order first seen
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)

    def start(self) -> _Traffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        # Bounded: tens of requests a second, at most 100,000.
        for _ in range(100_000):
            if self._stop.is_set():
                return
            self.sent += 1
            try:
                version, _ = _post(self.url, self.body)
            except (OSError, ValueError) as exc:
                self.failed += 1
                self.errors.append(str(exc))
            else:
                if version and version not in self.versions:
                    self.versions.add(version)
                    self.order.append(version)
            self._stop.wait(0.01)


def _version(ws: Workspace, ref: str) -> Any:
    try:
        return ws.registry.get(ref)
    except ModelcycleError:
        return None


def _serving(ws: Workspace, version: int) -> Any:
    active = ws.deploy.active("credit")
    if active is not None and active.model_version == version and ws.deploy.is_running(active):
        return active
    return None


def _detected(ws: Workspace) -> dict[str, Any] | None:
    for e in reversed(ws.audit.events()):
        if e.action == "drift.detected":
            return {"share": float(e.payload.get("share_drifted", 0.0)), "seq": e.seq}
    return None


def _gate(ws: Workspace) -> str | None:
    for e in reversed(ws.audit.events()):
        if e.subject.startswith("model:credit/2") and e.action in (
            "model.promoted",
            "model.promotion_refused",
        ):
            gate = e.payload.get("gate") or {k: v for k, v in e.payload.items() if k != "caused_by"}
            return f"{e.action} {json.dumps(gate)[:160]}"
    return None


def _timeline(ws: Workspace, console: Console) -> None:
    """The audit trail as a timeline, skipping the queue's own bookkeeping."""
    table = Table("seq", "at (UTC)", "action", "subject", "caused by", title="audit timeline")
    shown = (
        "workspace.created", "dataset.version_created", "run.started", "run.finished",
        "model.version_registered", "model.promoted", "model.promotion_refused",
        "promotion.requested", "promotion.approved",
        "deployment.succeeded", "deployment.rolled_back", "deployment.stopped",
        "drift.detected", "batch.finished", "job.failed", "job.cycle_cut",
    )  # fmt: skip
    for e in ws.audit.events():
        if e.action not in shown:
            continue
        table.add_row(
            str(e.seq), e.at[11:19], e.action, e.subject, str(e.payload.get("caused_by", ""))
        )
    console.print(table)
    chain = _chain(ws)
    if chain:
        console.print("why is the champion in production? " + "  <-  ".join(chain))


def _chain(ws: Workspace) -> list[str]:
    """From the newest deployment back through caused_by: deployment <- job <- event ..."""
    events = {e.seq: e for e in ws.audit.events()}
    start = next(
        (e for e in reversed(list(events.values())) if e.action == "deployment.succeeded"), None
    )
    out: list[str] = []
    current = start
    while current is not None and len(out) < 30:
        out.append(f"{current.action} {current.subject} (#{current.seq})")
        cause = current.payload.get("caused_by")
        if not isinstance(cause, str):
            break
        job = ws.automations.queue.get(cause.split(":", 1)[1])
        out.append(f"job {job.kind}/{job.rule}")
        current = events.get(job.event_seq) if job.event_seq else None
    return out

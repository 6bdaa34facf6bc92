"""Runs and steps in the metadata database: every change audited, stale runs found on read.

A run's process refreshes ``heartbeat_at``; a ``running`` run is stale when, on this host,
its process is gone, or (any host) its heartbeat is older than ``stale_after`` seconds. A
stale run is marked failed (``failure = "stale"``) by whoever lists it first.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, and_, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from modelcycle.audit import canonical_json, utc_timestamp
from modelcycle.entities import Run, StepRun
from modelcycle.errors import Conflict, InvalidInput, NotFound
from modelcycle.liveness import StaleSweep, last_line
from modelcycle.statuses import RunStatus, StepStatus
from modelcycle.store import MetadataStore, resolve_id, tables

__all__ = ["LISTED", "RunEnded", "RunRecords", "StepFinish"]

# The columns a run listing shows (no code, environment, host or heartbeat: see one run).
LISTED = (
    "id", "pipeline", "status", "failure", "params", "metrics", "datasets", "models",
    "started_at", "finished_at", "created_by",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class StepFinish:
    """What a finished (executed or cached) step recorded."""

    status: str
    outputs: dict[str, dict[str, Any]]
    metrics: dict[str, float]
    datasets: list[str]
    models: list[str]
    finished_at: str
    duration_s: float
    log_sha256: str | None = None
    log_size: int = 0
    cached_from: str | None = None


class RunEnded(Conflict):
    """The run is no longer running (another process marked it failed as stale)."""


class RunRecords:
    """The runs table and its steps for one workspace."""

    def __init__(self, metadata: MetadataStore, actor: str, *, stale_after: float = 300.0) -> None:
        self._meta = metadata
        self._actor = actor
        self.stale_after = stale_after
        self._stale: StaleSweep[Run] = StaleSweep(self.mark_stale, lambda: self.stale_after)

    # -- writing ----------------------------------------------------------------------------

    def create(self, run: Run) -> None:
        """Insert the run as ``running`` with its ``run.started`` event."""
        payload = {
            "pipeline": run.pipeline,
            "ref": run.ref,
            "params": run.params,
            "resumed_from": run.resumed_from,
            "host": run.hostname,
            "pid": run.pid,
        }
        with self._write("run.started", run.id, payload) as tx:
            tx.conn.execute(
                insert(tables.runs).values(
                    id=run.id,
                    pipeline=run.pipeline,
                    ref=run.ref,
                    status=RunStatus.RUNNING,
                    failure=None,
                    params=canonical_json(run.params),
                    metrics=canonical_json(run.metrics),
                    code=canonical_json(run.code),
                    environment=canonical_json(run.environment),
                    datasets=canonical_json(run.datasets),
                    models=canonical_json(run.models),
                    resumed_from=run.resumed_from,
                    hostname=run.hostname,
                    pid=run.pid,
                    heartbeat_at=run.started_at,
                    started_at=run.started_at,
                    created_by=run.created_by,
                )
            )

    def step_started(
        self,
        run_id: str,
        *,
        name: str,
        position: int,
        source_sha256: str,
        cache_key: str | None,
        params: Mapping[str, Any],
        inputs: Mapping[str, str],
        started_at: str,
    ) -> None:
        with self._write("run.step_started", run_id, {"step": name}) as tx:
            self._touch(tx.conn, run_id, {})
            tx.conn.execute(
                insert(tables.run_steps).values(
                    run_id=run_id,
                    name=name,
                    position=position,
                    status=StepStatus.RUNNING,
                    cache_key=cache_key,
                    source_sha256=source_sha256,
                    params=canonical_json(dict(params)),
                    inputs=canonical_json(dict(inputs)),
                    outputs="{}",
                    metrics="{}",
                    datasets="[]",
                    models="[]",
                    started_at=started_at,
                )
            )

    def step_finished(
        self,
        run_id: str,
        *,
        name: str,
        position: int,
        source_sha256: str,
        cache_key: str | None,
        params: Mapping[str, Any],
        inputs: Mapping[str, str],
        started_at: str,
        done: StepFinish,
        run_totals: Mapping[str, Any],
    ) -> None:
        """Record a succeeded or cached step, and the run's totals so far, in one write."""
        payload = {
            "step": name,
            "status": done.status,
            "cache_key": cache_key,
            "duration_s": round(done.duration_s, 6),
            "outputs": {k: v["sha256"] for k, v in done.outputs.items()},
            "cached_from": done.cached_from,
        }
        values = {
            "status": done.status,
            "outputs": canonical_json(done.outputs),
            "metrics": canonical_json(done.metrics),
            "datasets": canonical_json(done.datasets),
            "models": canonical_json(done.models),
            "log_sha256": done.log_sha256,
            "cached_from": done.cached_from,
            "finished_at": done.finished_at,
            "duration_s": done.duration_s,
        }
        with self._write("run.step_finished", run_id, payload) as tx:
            self._touch(tx.conn, run_id, run_totals)
            s = tables.run_steps
            changed = tx.conn.execute(
                update(s).where(s.c.run_id == run_id, s.c.name == name).values(**values)
            ).rowcount
            if not changed:
                tx.conn.execute(
                    insert(s).values(
                        run_id=run_id,
                        name=name,
                        position=position,
                        source_sha256=source_sha256,
                        cache_key=cache_key,
                        params=canonical_json(dict(params)),
                        inputs=canonical_json(dict(inputs)),
                        started_at=started_at,
                        **values,
                    )
                )
            for out_name, out in done.outputs.items():
                _index_blob(
                    tx.conn,
                    out["sha256"],
                    int(out.get("size", 0)),
                    f"run {run_id} {name}.{out_name}",
                    self._actor,
                )
            if done.log_sha256:
                _index_blob(
                    tx.conn,
                    done.log_sha256,
                    done.log_size,
                    f"run {run_id} {name} log",
                    self._actor,
                )

    def step_failed(
        self,
        run_id: str,
        *,
        name: str,
        error: str,
        log_sha256: str | None,
        finished_at: str,
        duration_s: float,
        run_totals: Mapping[str, Any],
    ) -> None:
        payload = {"step": name, "error": last_line(error)}
        with self._write("run.step_failed", run_id, payload) as tx:
            self._touch(tx.conn, run_id, run_totals)
            s = tables.run_steps
            tx.conn.execute(
                update(s)
                .where(s.c.run_id == run_id, s.c.name == name)
                .values(
                    status=StepStatus.FAILED,
                    error=error,
                    log_sha256=log_sha256,
                    finished_at=finished_at,
                    duration_s=duration_s,
                )
            )

    def finish(
        self,
        run_id: str,
        *,
        status: str,
        finished_at: str,
        totals: Mapping[str, Any],
        failure: str | None = None,
        error: str | None = None,
    ) -> None:
        """End the run: ``run.finished`` when it succeeded, else ``run.failed``."""
        action = "run.finished" if status == RunStatus.SUCCEEDED else "run.failed"
        payload: dict[str, Any] = {"status": status, "metrics": dict(totals.get("metrics", {}))}
        if failure:
            payload["failure"] = failure
        if error:
            payload["error"] = last_line(error)
        if totals.get("models"):
            payload["models"] = list(totals["models"])
        with self._write(action, run_id, payload) as tx:
            self._touch(
                tx.conn,
                run_id,
                totals,
                status=status,
                failure=failure,
                error=error,
                finished_at=finished_at,
            )

    def mark_stale(self, run: Run, reason: str) -> bool:
        """Mark a running run failed (stale); False when someone else ended it first."""
        now = utc_timestamp()
        payload = {"status": RunStatus.FAILED, "failure": "stale", "error": reason}
        try:
            with self._write("run.failed", run.id, payload) as tx:
                self._touch(
                    tx.conn,
                    run.id,
                    {},
                    status=RunStatus.FAILED,
                    failure="stale",
                    error=reason,
                    finished_at=now,
                    heartbeat=False,
                )
                s = tables.run_steps
                tx.conn.execute(
                    update(s)
                    .where(s.c.run_id == run.id, s.c.status == StepStatus.RUNNING)
                    .values(status=StepStatus.FAILED, error=reason, finished_at=now)
                )
        except RunEnded:
            return False
        return True

    def heartbeat(self, run_id: str) -> None:
        """Refresh the run's liveness stamp.

        The one write here without an audit event: a liveness timestamp changes no asset, and
        an event every few seconds would bury the trail. Only this column of a running run.
        """
        r = tables.runs
        with self._meta.unaudited() as conn:
            conn.execute(
                update(r)
                .where(r.c.id == run_id, r.c.status == RunStatus.RUNNING)
                .values(heartbeat_at=utc_timestamp())
            )

    # -- reading ----------------------------------------------------------------------------

    def get(self, run_id: str) -> Run:
        """The run (unique id prefix allowed) with its steps; a stale run is marked first."""
        resolved = self._resolve_id(run_id)
        run = self._load(resolved)
        if run.status == RunStatus.RUNNING and self._check_stale(run):
            run = self._load(resolved)
        return run

    def get_many(self, run_ids: Sequence[str]) -> builtins.list[Run]:
        """Several runs with their steps, in the order asked. Whole ids are read with one query
        for the runs and one for their steps (a comparison of 10 runs is 2 statements, not 50);
        a prefix, an unknown id (NotFound) or a running run (stale check) goes through get."""
        r, s = tables.runs, tables.run_steps
        with self._meta.read(snapshot=True) as conn:
            rows = {row.id: row for row in conn.execute(select(r).where(r.c.id.in_(run_ids)))}
            query = select(s).where(s.c.run_id.in_(list(rows))).order_by(s.c.run_id, s.c.position)
            steps: dict[str, builtins.list[StepRun]] = {}
            for x in conn.execute(query):
                steps.setdefault(x.run_id, []).append(_to_step(x._mapping))
        out: builtins.list[Run] = []
        for run_id in run_ids:
            row = rows.get(run_id)
            if row is None or row.status == RunStatus.RUNNING:
                out.append(self.get(run_id))
            else:
                out.append(_to_run(row._mapping, tuple(steps.get(run_id, ()))))
        return out

    def rows(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        after: tuple[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """The rows :meth:`list` reads, as stored (JSON columns as their text), only the
        columns of ``LISTED``, and without the stale-run sweep: for an interface that passes
        them on without decoding them and sweeps on its own schedule (the HTTP API)."""
        self._check_limit(limit)
        r = tables.runs
        query = self._listing(
            select(*(r.c[name] for name in LISTED)), pipeline, status, limit, after
        )
        with self._meta.read() as conn:
            return [dict(zip(LISTED, row, strict=True)) for row in conn.execute(query)]

    def list(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        after: tuple[str, str] | None = None,
    ) -> list[Run]:
        """Runs, newest first, without their steps; stale runs are marked failed first.
        ``after`` is the (started_at, id) of the last run of the previous page."""
        self._check_limit(limit)
        self.sweep_stale()
        query = self._listing(select(tables.runs), pipeline, status, limit, after)
        with self._meta.read() as conn:
            rows = conn.execute(query).all()
        return [_to_run(row._mapping, ()) for row in rows]

    def sweep_stale(self) -> None:
        """Mark failed every running run whose process died or stopped beating."""
        self._sweep_stale()

    @staticmethod
    def _check_limit(limit: int | None) -> None:
        if limit is not None and limit < 1:
            raise InvalidInput("must be at least 1", field="limit")

    @staticmethod
    def _listing(
        query: Select[Any],
        pipeline: str | None,
        status: str | None,
        limit: int | None,
        after: tuple[str, str] | None,
    ) -> Select[Any]:
        """Runs newest first (``started_at`` then id: the page cursor's key), filtered."""
        r = tables.runs
        query = query.order_by(r.c.started_at.desc(), r.c.id)
        if after is not None:
            query = query.where(
                or_(
                    r.c.started_at < after[0],
                    and_(r.c.started_at == after[0], r.c.id > after[1]),
                )
            )
        if pipeline is not None:
            query = query.where(r.c.pipeline == pipeline)
        if status is not None:
            query = query.where(r.c.status == status)
        if limit is not None:
            query = query.limit(limit)
        return query

    def find_cached(self, cache_key: str, *, run_id: str | None = None) -> dict[str, Any] | None:
        """The newest step that ended well with ``cache_key`` (within ``run_id`` if given)."""
        s = tables.run_steps
        query = select(s).where(s.c.cache_key == cache_key)
        if run_id is None:
            query = query.where(s.c.status == StepStatus.SUCCEEDED)
        else:
            query = query.where(
                s.c.run_id == run_id, s.c.status.in_((StepStatus.SUCCEEDED, StepStatus.CACHED))
            )
        query = query.order_by(s.c.finished_at.desc()).limit(1)
        with self._meta.read() as conn:
            row = conn.execute(query).first()
        return None if row is None else _step_row(row._mapping)

    def step_row(self, run_id: str, name: str) -> dict[str, Any]:
        s = tables.run_steps
        with self._meta.read() as conn:
            row = conn.execute(select(s).where(s.c.run_id == run_id, s.c.name == name)).first()
        if row is None:
            raise NotFound(f"run {run_id} has no step {name!r}")
        return _step_row(row._mapping)

    # -- helpers ----------------------------------------------------------------------------

    def _write(self, action: str, run_id: str, payload: dict[str, Any]) -> Any:
        return self._meta.write(
            actor=self._actor, action=action, subject=f"run:{run_id}", payload=payload
        )

    def _touch(
        self,
        conn: Connection,
        run_id: str,
        totals: Mapping[str, Any],
        *,
        heartbeat: bool = True,
        **values: Any,
    ) -> None:
        """Update the run row, only while it is running; a run marked stale meanwhile stops."""
        r = tables.runs
        for key in ("metrics", "datasets", "models"):
            if key in totals:
                values[key] = canonical_json(totals[key])
        if heartbeat:
            values["heartbeat_at"] = utc_timestamp()
        changed = conn.execute(
            update(r).where(r.c.id == run_id, r.c.status == RunStatus.RUNNING).values(**values)
        ).rowcount
        if not changed:
            raise RunEnded(f"run {run_id} is no longer running (it was marked failed meanwhile)")

    def _resolve_id(self, run_id: str) -> str:
        return resolve_id(
            self._meta,
            tables.runs.c.id,
            run_id,
            field="run",
            noun="run",
            listing="modelcycle runs list",
        )

    def _load(self, run_id: str) -> Run:
        r = tables.runs
        s = tables.run_steps
        with self._meta.read(snapshot=True) as conn:
            row = conn.execute(select(r).where(r.c.id == run_id)).first()
            steps = conn.execute(select(s).where(s.c.run_id == run_id).order_by(s.c.position)).all()
        if row is None:
            raise NotFound(f"no run {run_id!r}; `modelcycle runs list` shows the runs")
        return _to_run(row._mapping, tuple(_to_step(x._mapping) for x in steps))

    def _sweep_stale(self) -> None:
        r = tables.runs
        with self._meta.read() as conn:
            rows = conn.execute(select(r).where(r.c.status == RunStatus.RUNNING)).all()
        self._stale.sweep(_to_run(row._mapping, ()) for row in rows)

    def _check_stale(self, run: Run) -> bool:
        return self._stale.check(run)


def iter_json(text: str | None, default: Any) -> Any:
    return default if text is None else json.loads(text)


def _step_row(m: Any) -> dict[str, Any]:
    out = dict(m)
    for key, default in (
        ("params", {}),
        ("inputs", {}),
        ("outputs", {}),
        ("metrics", {}),
        ("datasets", []),
        ("models", []),
    ):
        out[key] = iter_json(out.get(key), default)
    return out


def _to_step(m: Any) -> StepRun:
    d = _step_row(m)
    return StepRun(
        run_id=d["run_id"],
        name=d["name"],
        position=int(d["position"]),
        status=d["status"],
        cache_key=d["cache_key"],
        source_sha256=d["source_sha256"],
        params=d["params"],
        inputs=d["inputs"],
        outputs=d["outputs"],
        metrics=d["metrics"],
        datasets=d["datasets"],
        models=d["models"],
        started_at=d["started_at"],
        finished_at=d["finished_at"],
        duration_s=d["duration_s"],
        cached_from=d["cached_from"],
        log_sha256=d["log_sha256"],
        error=d["error"],
    )


def _to_run(m: Any, steps: tuple[StepRun, ...]) -> Run:
    return Run(
        id=m["id"],
        pipeline=m["pipeline"],
        ref=m["ref"],
        status=m["status"],
        failure=m["failure"],
        params=json.loads(m["params"]),
        metrics=json.loads(m["metrics"]),
        code=json.loads(m["code"]),
        environment=json.loads(m["environment"]),
        datasets=json.loads(m["datasets"]),
        models=json.loads(m["models"]),
        error=m["error"],
        resumed_from=m["resumed_from"],
        hostname=m["hostname"],
        pid=m["pid"],
        heartbeat_at=m["heartbeat_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        created_by=m["created_by"],
        steps=steps,
    )


def _index_blob(conn: Connection, sha256: str, size: int, label: str, actor: str) -> None:
    """List the blob in the artifact index unless it is there (two runs may race: no error)."""
    a = tables.artifacts
    values = {
        "sha256": sha256,
        "size": size,
        "label": label[:500],
        "created_at": utc_timestamp(),
        "created_by": actor,
    }
    if conn.dialect.name == "postgresql":
        conn.execute(pg_insert(a).values(**values).on_conflict_do_nothing())
    elif conn.dialect.name == "sqlite":
        conn.execute(sqlite_insert(a).values(**values).on_conflict_do_nothing())
    elif conn.execute(select(a.c.sha256).where(a.c.sha256 == sha256)).first() is None:
        conn.execute(insert(a).values(**values))

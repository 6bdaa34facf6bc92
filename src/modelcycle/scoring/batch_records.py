"""Batch jobs and their chunks in the metadata database; stale jobs found on read.

Job rows change through audited writes: ``batch.started`` (created), ``batch.resumed``,
``batch.finished`` and ``batch.failed``. Two writes here carry no audit event, as the
pipeline heartbeat does not: the job's liveness stamp, and the commit of a chunk (its row in
``batch_chunks`` plus the job's ``rows_out``/``heartbeat_at``). A chunk changes no asset of
its own: it is progress inside the job whose start and end are audited, and an event per
chunk (hundreds per job) would bury the trail. Each chunk row is written only after its part
file is complete and renamed into place, so the rows are the job's exact-once ledger.

A ``running`` job is stale when, on this host, its process is gone, or (any host) its
heartbeat is older than ``stale_after`` seconds; it is then marked failed by whoever reads it.
"""

from __future__ import annotations

import builtins
import json
import os
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, insert, select, update

from modelcycle.audit import canonical_json, utc_timestamp
from modelcycle.errors import Conflict, NotFound
from modelcycle.liveness import StaleSweep, hostname, last_line
from modelcycle.statuses import BatchJobStatus
from modelcycle.store import MetadataStore, resolve_id, tables

__all__ = ["BatchJob", "BatchRecords", "ChunkRow"]


@dataclass(frozen=True, slots=True)
class ChunkRow:
    chunk: int
    rows: int
    part: str
    sha256: str
    committed_at: str


@dataclass(frozen=True, slots=True)
class BatchJob:
    """One batch scoring job as recorded; ``params`` holds everything a resume needs."""

    id: str
    model_name: str
    model_version: int
    input: str
    output: str
    engine: str
    status: str
    params: dict[str, Any]
    rows_in: int
    rows_out: int
    chunks_total: int | None
    error: str | None
    hostname: str | None
    pid: int | None
    heartbeat_at: str | None
    started_at: str
    finished_at: str | None
    created_by: str
    chunks: tuple[ChunkRow, ...] = field(default=())

    @property
    def model_ref(self) -> str:
        return f"{self.model_name}/{self.model_version}"

    def as_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__slots__ if k != "chunks"}
        data["chunks_done"] = len(self.chunks)
        return data


class BatchRecords:
    """The ``batch_jobs`` and ``batch_chunks`` tables of one workspace."""

    def __init__(self, metadata: MetadataStore, actor: str, *, stale_after: float = 120.0) -> None:
        self._meta = metadata
        self._actor = actor
        self.stale_after = stale_after
        self._stale: StaleSweep[BatchJob] = StaleSweep(self._mark_stale, lambda: self.stale_after)

    # -- audited writes ---------------------------------------------------------------------

    def create(
        self,
        *,
        job_id: str,
        model_name: str,
        model_version: int,
        input: str,
        output: str,
        engine: str,
        params: dict[str, Any],
        rows_in: int,
    ) -> None:
        now = utc_timestamp()
        payload = {
            "model": f"{model_name}/{model_version}",
            "input": input,
            "output": output,
            "engine": engine,
            "host": hostname(),
            "pid": os.getpid(),
        }
        with self._write("batch.started", job_id, payload) as tx:
            tx.conn.execute(
                insert(tables.batch_jobs).values(
                    id=job_id,
                    model_name=model_name,
                    model_version=model_version,
                    input=input,
                    output=output,
                    engine=engine,
                    status=BatchJobStatus.RUNNING,
                    params=canonical_json(params),
                    rows_in=rows_in,
                    rows_out=0,
                    chunks_total=None,
                    error=None,
                    hostname=hostname(),
                    pid=os.getpid(),
                    heartbeat_at=now,
                    started_at=now,
                    created_by=self._actor,
                )
            )

    def resumed(self, job: BatchJob) -> None:
        """Take over a failed job in this process (``batch.resumed``)."""
        payload = {"done_chunks": len(job.chunks), "host": hostname(), "pid": os.getpid()}
        with self._write("batch.resumed", job.id, payload) as tx:
            j = tables.batch_jobs
            changed = tx.conn.execute(
                update(j)
                .where(j.c.id == job.id, j.c.status == BatchJobStatus.FAILED)
                .values(
                    status=BatchJobStatus.RUNNING,
                    error=None,
                    finished_at=None,
                    hostname=hostname(),
                    pid=os.getpid(),
                    heartbeat_at=utc_timestamp(),
                )
            ).rowcount
            if not changed:
                raise Conflict(f"batch job {job.id} is no longer failed; it cannot be resumed")

    def finished(
        self, job_id: str, *, rows_in: int, chunks_total: int, rejected: int | None = None
    ) -> None:
        """Mark the job succeeded (``batch.finished``); ``rejected``: CSV rows skipped as bad."""
        j = tables.batch_jobs
        with self._write("batch.finished", job_id, {}) as tx:
            rows_out = self._rows_out(tx.conn, job_id)
            tx.payload.update(rows_in=rows_in, rows_out=rows_out, chunks=chunks_total)
            if rejected is not None:
                tx.payload["rejected"] = rejected
            tx.conn.execute(
                update(j)
                .where(j.c.id == job_id)
                .values(
                    status=BatchJobStatus.SUCCEEDED,
                    rows_in=rows_in,
                    rows_out=rows_out,
                    chunks_total=chunks_total,
                    heartbeat_at=utc_timestamp(),
                    finished_at=utc_timestamp(),
                )
            )

    def failed(self, job_id: str, error: str, *, only_if_running: bool = False) -> bool:
        """Mark the job failed (``batch.failed``); False when it was not running (and had to be)."""
        j = tables.batch_jobs
        with self._write("batch.failed", job_id, {"error": last_line(error)}) as tx:
            query = update(j).where(j.c.id == job_id)
            if only_if_running:
                query = query.where(j.c.status == BatchJobStatus.RUNNING)
            changed = tx.conn.execute(
                query.values(
                    status=BatchJobStatus.FAILED,
                    error=error,
                    rows_out=self._rows_out(tx.conn, job_id),
                    finished_at=utc_timestamp(),
                )
            ).rowcount
            if not changed:
                raise _NotRunning
        return True

    # -- cheap, non-audited writes (see the module docstring) -------------------------------

    def commit_chunk(self, job_id: str, chunk: int, rows: int, part: str, sha256: str) -> None:
        """Record one chunk whose part is in place; a chunk already recorded is left alone."""
        c, j = tables.batch_chunks, tables.batch_jobs
        with self._cheap_write() as conn:
            if conn.execute(
                select(c.c.chunk).where(c.c.job_id == job_id, c.c.chunk == chunk)
            ).first():
                return
            conn.execute(
                insert(c).values(
                    job_id=job_id,
                    chunk=chunk,
                    rows=rows,
                    part=part,
                    sha256=sha256,
                    committed_at=utc_timestamp(),
                )
            )
            conn.execute(
                update(j)
                .where(j.c.id == job_id)
                .values(rows_out=j.c.rows_out + rows, heartbeat_at=utc_timestamp())
            )

    def heartbeat(self, job_id: str) -> None:
        j = tables.batch_jobs
        with self._cheap_write() as conn:
            conn.execute(
                update(j)
                .where(j.c.id == job_id, j.c.status == BatchJobStatus.RUNNING)
                .values(heartbeat_at=utc_timestamp())
            )

    # -- reading ----------------------------------------------------------------------------

    def get(self, job_id: str) -> BatchJob:
        """The job (a unique id prefix is enough) with its chunks; a stale job is marked first."""
        resolved = self._resolve(job_id)
        job = self._load(resolved)
        if job.status == BatchJobStatus.RUNNING and self._check_stale(job):
            job = self._load(resolved)
        return job

    def list(self, *, limit: int | None = 50) -> builtins.list[BatchJob]:
        j = tables.batch_jobs
        with self._meta.read() as conn:
            running = conn.execute(select(j).where(j.c.status == BatchJobStatus.RUNNING)).all()
        self._stale.sweep(_to_job(row._mapping, ()) for row in running)
        query = select(j).order_by(j.c.started_at.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._meta.read() as conn:
            rows = conn.execute(query).all()
        return [_to_job(r._mapping, ()) for r in rows]

    # -- helpers ----------------------------------------------------------------------------

    def _write(self, action: str, job_id: str, payload: dict[str, Any]) -> Any:
        return self._meta.write(
            actor=self._actor, action=action, subject=f"batch:{job_id}", payload=payload
        )

    def _cheap_write(self) -> Any:
        return self._meta.unaudited()

    @staticmethod
    def _rows_out(conn: Connection, job_id: str) -> int:
        c = tables.batch_chunks
        rows = conn.execute(select(c.c.rows).where(c.c.job_id == job_id)).all()
        return sum(int(r.rows) for r in rows)

    def _resolve(self, job_id: str) -> str:
        return resolve_id(
            self._meta,
            tables.batch_jobs.c.id,
            job_id,
            field="job",
            noun="batch job",
            listing="modelcycle score list",
        )

    def _load(self, job_id: str) -> BatchJob:
        j, c = tables.batch_jobs, tables.batch_chunks
        with self._meta.read(snapshot=True) as conn:
            row = conn.execute(select(j).where(j.c.id == job_id)).first()
            chunks = conn.execute(select(c).where(c.c.job_id == job_id).order_by(c.c.chunk)).all()
        if row is None:
            raise NotFound(f"no batch job {job_id!r}; `modelcycle score list` shows the jobs")
        return _to_job(
            row._mapping,
            tuple(
                ChunkRow(int(x.chunk), int(x.rows), str(x.part), str(x.sha256), str(x.committed_at))
                for x in chunks
            ),
        )

    def _check_stale(self, job: BatchJob) -> bool:
        return job.status == BatchJobStatus.RUNNING and self._stale.check(job)

    def _mark_stale(self, job: BatchJob, reason: str) -> bool:
        try:
            return self.failed(job.id, reason, only_if_running=True)
        except _NotRunning:
            return False

    def stale_reason(self, job: BatchJob) -> str | None:
        return self._stale.reason(job) if job.status == BatchJobStatus.RUNNING else None


class _NotRunning(Conflict):
    def __init__(self) -> None:
        super().__init__("the batch job is not running")


def _to_job(m: Any, chunks: tuple[ChunkRow, ...]) -> BatchJob:
    return BatchJob(
        id=m["id"],
        model_name=m["model_name"],
        model_version=int(m["model_version"]),
        input=m["input"],
        output=m["output"],
        engine=m["engine"],
        status=m["status"],
        params=json.loads(m["params"]),
        rows_in=int(m["rows_in"]),
        rows_out=int(m["rows_out"]),
        chunks_total=m["chunks_total"],
        error=m["error"],
        hostname=m["hostname"],
        pid=m["pid"],
        heartbeat_at=m["heartbeat_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        created_by=m["created_by"],
        chunks=chunks,
    )

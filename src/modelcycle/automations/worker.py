"""The worker: dispatch new events, claim a job, run it under a renewed lease, record the end.

``modelcycle worker`` runs :meth:`Worker.run` until SIGTERM/SIGINT, after which it finishes
the job in hand (or, if killed outright, its lease expires and another worker takes the job).
"""

from __future__ import annotations

import io
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from functools import partial

from modelcycle.automations.actions import Action, Stages
from modelcycle.automations.dispatch import Dispatcher
from modelcycle.automations.notifications import Notifications
from modelcycle.automations.queue import JobQueue
from modelcycle.automations.schedules import Scheduler
from modelcycle.capture import capture_output
from modelcycle.entities import Job
from modelcycle.errors import Conflict, IntegrityError
from modelcycle.liveness import Heartbeat
from modelcycle.store import caused_by

__all__ = ["Worker"]


class Worker:
    """One worker process (``concurrency`` threads each take one job at a time)."""

    def __init__(
        self,
        queue: JobQueue,
        dispatcher: Dispatcher,
        actions: Mapping[str, Action],
        stages: Stages,
        *,
        name: str | None = None,
        lease_seconds: float = 60.0,
        poll_seconds: float = 1.0,
        scheduler: Scheduler | None = None,
        notifications: Notifications | None = None,
    ) -> None:
        self._scheduler = scheduler
        self._notifications = notifications
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._queue = queue
        self._dispatcher = dispatcher
        self._actions = dict(actions)
        self._stages = stages
        self._lease = lease_seconds
        self._poll = poll_seconds
        self._stop = threading.Event()
        self._fatal: IntegrityError | None = None
        self._next_expiry = 0.0  # monotonic time of the next promotion-request expiry sweep

    def stop(self) -> None:
        """Finish the job in hand, then return from :meth:`run`."""
        self._stop.set()

    def run(self, *, concurrency: int = 1, on_job: Callable[[Job], None] | None = None) -> None:
        """Work until :meth:`stop`."""
        threads = [
            threading.Thread(target=self._loop, args=(on_job,), name=f"worker-{i}", daemon=True)
            for i in range(concurrency)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self._fatal is not None:
            raise self._fatal

    def _loop(self, on_job: Callable[[Job], None] | None) -> None:
        while not self._stop.is_set():
            try:
                job = self.run_once()
            except IntegrityError as exc:
                # The audit chain is marked broken: every write is refused until an admin
                # acknowledges it, so stop (and say why) instead of dying thread by thread.
                self._fatal = exc
                self._stop.set()
                return
            if job is not None and on_job is not None:
                on_job(job)
            if job is None:
                self._stop.wait(self._poll)

    def run_once(self) -> Job | None:
        """Schedule and dispatch, then claim and run at most one job; return it as it ended."""
        if self._scheduler is not None:
            self._scheduler.tick()
        self._expire_requests()
        self._dispatcher.dispatch(self._stages.audit)
        if self._notifications is not None:
            self._notifications.dispatch(self._stages.audit)
        job = self._queue.claim(self.name, lease_seconds=self._lease)
        if job is None:
            return None
        return self._execute(job)

    def _expire_requests(self) -> None:
        """Promotion requests past their expiry become ``promotion.expired`` (which rules and
        notifications see) even when nobody looks at them; at most every 10 s."""
        now = time.monotonic()
        if now < self._next_expiry:
            return
        self._next_expiry = now + 10.0
        # Only where a policy exists: other workers never load the registry for this.
        settings = getattr(self._stages, "settings", None)
        if settings is None or not settings.config.get("promotion"):
            return
        approvals = getattr(self._stages.registry, "approvals", None)
        if approvals is not None:
            approvals.expire_due()

    def _execute(self, job: Job) -> Job:
        action = self._actions.get(job.kind)
        renew = partial(self._queue.renew, job, self.name, lease_seconds=self._lease)
        out = io.StringIO()
        try:
            # The lease is renewed while the action runs, and no longer once it has ended.
            lease = Heartbeat(renew, self._lease / 3, name=f"lease-{job.id}")
            with lease, capture_output(out), caused_by(job.id):
                if action is None:
                    raise LookupError(f"no action {job.kind!r} in this worker")
                result = action(self._stages, job)
        except Exception as exc:
            log = out.getvalue() + traceback.format_exc()
            try:
                return self._queue.fail(job, self.name, f"{type(exc).__name__}: {exc}", log)
            except Conflict:
                return self._queue.get(job.id)  # lease lost or cancelled: nothing to record
        try:
            return self._queue.complete(job, self.name, result, out.getvalue())
        except Conflict:
            return self._queue.get(job.id)

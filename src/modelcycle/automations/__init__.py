"""Automations: events (the audit log), rules, a job queue in the database, and workers."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from modelcycle.automations.actions import ACTIONS, Stages
from modelcycle.automations.backfill import BackfillItem, find_rule, plan_backfill, run_backfill
from modelcycle.automations.config import AutomationsSection
from modelcycle.automations.dispatch import Dispatcher
from modelcycle.automations.notifications import NOTIFY_KIND, Notifications, delivery_policy
from modelcycle.automations.notify_config import load_notification_config
from modelcycle.automations.queue import JOB_STATES, JobQueue
from modelcycle.automations.rules import KNOWN_EVENTS, Rule, load_rules
from modelcycle.automations.schedules import (
    Schedule,
    Scheduler,
    Source,
    load_schedules,
    load_sources,
)
from modelcycle.automations.worker import Worker
from modelcycle.entities import Job
from modelcycle.settings import CONFIG_FILE, parse_section
from modelcycle.store import MetadataStore

__all__ = [
    "ACTIONS",
    "JOB_STATES",
    "KNOWN_EVENTS",
    "Automations",
    "BackfillItem",
    "Dispatcher",
    "JobQueue",
    "Notifications",
    "Rule",
    "Schedule",
    "Scheduler",
    "Source",
    "Stages",
    "Worker",
    "load_rules",
    "load_schedules",
    "load_sources",
]


class Automations:
    """``ws.automations``: the rules of ``modelcycle.toml``, the queue, and workers."""

    def __init__(
        self,
        metadata: MetadataStore,
        actor: str,
        stages: Stages,
        config: Mapping[str, Any],
        *,
        root: Path,
        config_file: Path | None = None,
    ) -> None:
        self._root = root
        # When the rules were last changed: the file's modification time (a stateless worker
        # reads them from MODELCYCLE_CONFIG, not from a workspace folder).
        self._config_file = config_file or root / CONFIG_FILE
        self._meta = metadata
        self._actor = actor
        self._stages = stages
        self._config = config
        section = parse_section(config, "automations", AutomationsSection)
        # [[notify]], [smtp], [notifications], [audit] verify_every: checked here, once.
        notify = load_notification_config(config)
        self.queue = JobQueue(
            metadata,
            actor,
            backoff_seconds=section.backoff_seconds,
            retry_policies={NOTIFY_KIND: delivery_policy(notify.settings)},
        )
        self.notifications = Notifications(
            metadata, self.queue, actor, notify, config_path=root / CONFIG_FILE
        )

    @property
    def rules(self) -> list[Rule]:
        """The validated rules (raises InvalidInput naming the first bad entry)."""
        return load_rules(self._config, ACTIONS)

    def dispatcher(self) -> Dispatcher:
        return Dispatcher(
            self._meta, self.queue, self.rules, self._actor, config_path=self._config_file
        )

    def plan_backfill(
        self, rule: str, *, since_seq: int | None = None, since_at: str | None = None
    ) -> list[BackfillItem]:
        """The past events ``rule`` matches from a sequence number or time on (writes nothing)."""
        return plan_backfill(
            self._meta,
            self._stages.audit,
            find_rule(self.rules, rule),
            since_seq=since_seq,
            since_at=since_at,
        )

    def backfill(
        self, rule: str, *, since_seq: int | None = None, since_at: str | None = None
    ) -> list[Job]:
        """Queue ``rule``'s jobs for past events (audited as ``rules.backfilled``)."""
        found = find_rule(self.rules, rule)
        items = plan_backfill(
            self._meta, self._stages.audit, found, since_seq=since_seq, since_at=since_at
        )
        since = f"seq {since_seq}" if since_seq is not None else str(since_at)
        return run_backfill(self._meta, self.queue, found, items, actor=self._actor, since=since)

    def scheduler(self, *, clock: Callable[[], float] = time.time) -> Scheduler:
        """Schedules and watched sources from modelcycle.toml."""
        verify = self.notifications.schedule()
        return Scheduler(
            self.queue,
            [*load_schedules(self._config, ACTIONS), *([verify] if verify else [])],
            load_sources(self._config),
            root=self._root,
            clock=clock,
        )

    def worker(
        self, *, name: str | None = None, lease_seconds: float = 60.0, poll_seconds: float = 1.0
    ) -> Worker:
        """A worker over this workspace's queue, rules, schedules and sources."""
        return Worker(
            self.queue,
            self.dispatcher(),
            {**ACTIONS, **self.notifications.actions()},
            self._stages,
            name=name,
            lease_seconds=lease_seconds,
            poll_seconds=poll_seconds,
            scheduler=self.scheduler(),
            notifications=self.notifications,
        )

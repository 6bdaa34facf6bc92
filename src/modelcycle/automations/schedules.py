"""Time and files as event sources: schedules (``every = "15m"``) and watched data sources.

Both turn into jobs through the queue with keys that make them happen once however many
workers tick: a schedule's key is its name and time slot (``schedule:NAME:SLOT``), a source's
key is the data set and the files' fingerprint.

    [[schedules]]
    name = "drift-credit"
    every = "15m"
    do = "note"                      # any action
    with = { text = "check drift" }

    [[sources]]
    dataset = "credit"
    path = "incoming/credit-*.parquet"   # a file, a folder of Parquet parts or a glob

A source is polled cheaply (sizes and modification times); the content is read only when
those changed, and only once two polls in a row saw the same fingerprint: a file still being
written is left alone until it stops changing. The data set catalog then adds a version only
if the content hash is new, which fires ``dataset.version_created``.
"""

from __future__ import annotations

import glob
import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from modelcycle.automations.queue import JobQueue
from modelcycle.automations.rules import parse_duration
from modelcycle.entities import Job
from modelcycle.errors import InvalidInput
from modelcycle.names import validate_name

__all__ = ["Schedule", "Scheduler", "Source", "load_schedules", "load_sources"]


@dataclass(frozen=True)
class Schedule:
    name: str
    every: timedelta
    do: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    dataset: str
    path: str


def load_schedules(config: Mapping[str, Any], actions: Iterable[str]) -> list[Schedule]:
    """``[[schedules]]``, checked."""
    known = set(actions)
    out: list[Schedule] = []
    for i, entry in enumerate(_entries(config, "schedules")):
        where = f"schedules[{i}]"
        name = validate_name(str(entry.get("name", "")), field=f"{where}.name")
        every = parse_duration(str(entry.get("every", "")), field=f"{where}.every")
        if every < timedelta(seconds=1):
            raise InvalidInput("must be at least 1s", field=f"{where}.every")
        do = str(entry.get("do", ""))
        if do not in known:
            raise InvalidInput(
                f"{do!r} is not an action; expected one of {', '.join(sorted(known))}",
                field=f"{where}.do",
            )
        params = entry.get("with", {})
        if not isinstance(params, dict):
            raise InvalidInput("must be a table", field=f"{where}.with")
        out.append(Schedule(name, every, do, dict(params)))
    return out


def load_sources(config: Mapping[str, Any]) -> list[Source]:
    """``[[sources]]``, checked."""
    out: list[Source] = []
    for i, entry in enumerate(_entries(config, "sources")):
        where = f"sources[{i}]"
        dataset = validate_name(str(entry.get("dataset", "")), field=f"{where}.dataset")
        path = str(entry.get("path", "")).strip()
        if not path:
            raise InvalidInput("must name a file, folder or glob", field=f"{where}.path")
        out.append(Source(dataset, path))
    return out


def _entries(config: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    raw = config.get(key, [])
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise InvalidInput(f"must be an array of tables ([[{key}]])", field=key)
    return raw


class Scheduler:
    """Queues scheduled and source-triggered jobs; call :meth:`tick` from the worker loop."""

    def __init__(
        self,
        queue: JobQueue,
        schedules: Iterable[Schedule],
        sources: Iterable[Source],
        *,
        root: Path,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._queue = queue
        self._schedules = list(schedules)
        self._sources = list(sources)
        self._root = root
        self._clock = clock
        self._last_slot: dict[str, int] = {}
        self._seen: dict[str, str] = {}  # source -> fingerprint at the previous poll

    @property
    def schedules(self) -> list[Schedule]:
        """The schedules this scheduler runs (read-only copy, for listing)."""
        return list(self._schedules)

    @property
    def sources(self) -> list[Source]:
        """The watched data sources (read-only copy, for listing)."""
        return list(self._sources)

    def tick(self) -> list[Job]:
        """Queue whatever is due now; return the jobs this tick created."""
        created: list[Job] = []
        now = self._clock()
        for s in self._schedules:
            slot = int(now // s.every.total_seconds())
            if self._last_slot.get(s.name) == slot:
                continue
            self._last_slot[s.name] = slot
            job, new = self._queue.enqueue(
                s.do, s.params, key=f"schedule:{s.name}:{slot}", rule=f"schedule:{s.name}"
            )
            if new:
                created.append(job)
        for src in self._sources:
            fingerprint = self._fingerprint(src)
            previous = self._seen.get(src.dataset)
            self._seen[src.dataset] = fingerprint
            if fingerprint == "" or fingerprint != previous:
                continue  # nothing there, or still changing since the last poll
            job, new = self._queue.enqueue(
                "ingest",
                {"dataset": src.dataset, "path": self._resolve(src.path)},
                key=f"source:{src.dataset}:{fingerprint}",
                rule=f"source:{src.dataset}",
            )
            if new:
                created.append(job)
        return created

    def _resolve(self, path: str) -> str:
        return path if Path(path).is_absolute() else str(self._root / path)

    def _fingerprint(self, src: Source) -> str:
        """Sizes and modification times of the source's files ('' when there are none)."""
        path = self._resolve(src.path)
        if any(ch in path for ch in "*?["):
            files = sorted(p for p in glob.glob(path, recursive=True) if Path(p).is_file())
        elif Path(path).is_dir():
            files = sorted(str(p) for p in Path(path).rglob("*") if p.is_file())
        else:
            files = [path] if Path(path).is_file() else []
        if not files:
            return ""
        digest = hashlib.sha256()
        for f in files:
            st = Path(f).stat()
            digest.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:32]

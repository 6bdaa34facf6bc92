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
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from modelcycle.automations.queue import JobQueue
from modelcycle.automations.rules import checked_name, parse_duration
from modelcycle.entities import Job
from modelcycle.errors import InvalidInput
from modelcycle.settings import CONFIG_FILE, SectionModel, parse_section

__all__ = [
    "Schedule",
    "ScheduleEntry",
    "Scheduler",
    "Source",
    "SourceEntry",
    "load_schedules",
    "load_sources",
]


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


def _every(value: str) -> str:
    """A validator: a duration of at least a second (pydantic says ``expected ...``)."""
    try:
        every = parse_duration(value, field="every")
    except InvalidInput:
        raise ValueError(f"a duration such as 30s, 15m, 6h, 1d, got {value!r}") from None
    if every < timedelta(seconds=1):
        raise ValueError(f"at least 1s, got {value!r}")
    return value


def _path(value: str) -> str:
    if not value.strip():
        raise ValueError("a file, folder or glob")
    return value.strip()


class ScheduleEntry(SectionModel):
    """One ``[[schedules]]`` table as written; :func:`load_schedules` checks the action."""

    name: Annotated[str, AfterValidator(checked_name)]
    every: Annotated[str, AfterValidator(_every)]
    do: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")


class SourceEntry(SectionModel):
    """One ``[[sources]]`` table: a data set fed by a file, folder or glob."""

    dataset: Annotated[str, AfterValidator(checked_name)]
    path: Annotated[str, AfterValidator(_path)]


def load_schedules(config: Mapping[str, Any], actions: Iterable[str]) -> list[Schedule]:
    """``[[schedules]]``, checked; a problem is one line naming ``schedules[INDEX].KEY``."""
    known = set(actions)
    out: list[Schedule] = []
    for i, entry in enumerate(parse_section(config, "schedules", list[ScheduleEntry])):
        if entry.do not in known:
            raise InvalidInput(
                f"{entry.do!r} is not an action; expected one of {', '.join(sorted(known))}",
                field=f"{CONFIG_FILE} schedules[{i}].do",
            )
        every = parse_duration(entry.every, field="every")
        out.append(Schedule(entry.name, every, entry.do, dict(entry.with_)))
    return out


def load_sources(config: Mapping[str, Any]) -> list[Source]:
    """``[[sources]]``, checked; a problem is one line naming ``sources[INDEX].KEY``."""
    entries = parse_section(config, "sources", list[SourceEntry])
    return [Source(e.dataset, e.path) for e in entries]


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

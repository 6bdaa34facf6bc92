"""Prometheus metrics of the scoring server, summed over its worker processes.

Each worker writes its counters and histograms into files of its own, in prometheus_client's
multiprocess format (one mmap'ed file per metric type and process), inside a directory the
server makes afresh at each start (:func:`prepare_directory`). ``/metrics`` on any worker reads
every worker's files through prometheus_client's ``MultiProcessCollector``, which sums them: a
scrape sees the whole server whichever worker answers. A directory left by a killed server is
removed at the next start, so its counts are never added in.

Why not prometheus_client's ``Counter``/``Histogram`` objects: in multiprocess mode every
increment takes one process-wide lock and calls ``getpid()`` (to notice a fork). Here every
value is written from the worker's event loop thread only, and the workers are spawned, never
forked, so an increment is a plain write into the mmap.

An app made in-process without a directory (tests, embedding, a bundle's server) keeps its
counters in memory, in the same slots, rendered the same way; it writes nothing to disk.
Gauges (queue depth, native threads, ready) describe the worker that answers, as before.
"""

from __future__ import annotations

import os
import shutil
import struct
from bisect import bisect_left
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Metric, generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector

from modelcycle.scoring.batcher import BATCH_SIZE_BUCKETS, SlotStats

if TYPE_CHECKING:
    from modelcycle.scoring.engine import ScoringEngine

__all__ = [
    "LATENCY_BUCKETS",
    "FileSlotStats",
    "MetricStore",
    "Metrics",
    "prepare_directory",
    "slot_stats",
    "use_directory",
]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

Labels = tuple[tuple[str, str], ...]

# name (counters without "_total", as prometheus_client keys them) -> help text
_COUNTERS = {
    "modelcycle_requests": "Scoring requests answered, by protocol and status.",
    "modelcycle_model_requests": "Requests per model version.",
    "modelcycle_model_failed_requests": (
        "Requests per model version that failed validation or predict."
    ),
    "modelcycle_scored_rows": "Rows scored per model version.",
    "modelcycle_predict_calls": "Calls into the model (one per micro-batch).",
}
_HISTOGRAMS = {
    "modelcycle_request_duration_seconds": "Time to answer a scoring request.",
    "modelcycle_batch_size": "Rows per call into the model.",
}
_DIR_PREFIX = "metrics-"
_DOUBLE = struct.Struct("d").pack
_TWO_DOUBLES = struct.Struct("dd").unpack_from


class _Value:
    """One sample's value, written through to its process's metric file at each change.

    The value's slot is made once by ``MmapedDict``; a change then writes the 8 bytes of the
    double in place (one slice assignment: a reader never sees a half-written value). The map
    is looked up at each write because ``MmapedDict`` replaces it when the file grows.
    """

    __slots__ = ("_file", "_pos", "value")

    def __init__(self, file: MmapedDict | _MemoryFile, key: str) -> None:
        self._file = file
        self.value: float = float(file.read_value(key)[0])
        self._pos: int = file._positions[key]

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount
        self._file._m[self._pos : self._pos + 8] = _DOUBLE(self.value)

    def set(self, value: float) -> None:
        self.value = value
        self._file._m[self._pos : self._pos + 8] = _DOUBLE(value)


class _Histogram:
    """Prometheus histogram values: one non-cumulative count per bucket (+Inf last), and a sum
    (the collector makes the buckets cumulative and adds the count)."""

    __slots__ = ("bounds", "buckets", "sum")

    def __init__(self, bounds: Sequence[float], buckets: list[_Value], total: _Value) -> None:
        self.bounds = tuple(bounds)
        self.buckets = buckets
        self.sum = total

    def observe(self, amount: float) -> None:
        self.buckets[bisect_left(self.bounds, amount)].inc()
        self.sum.inc(amount)

    @property
    def count(self) -> int:
        return int(sum(b.value for b in self.buckets))

    def cumulative(self) -> list[int]:
        """Counts at or below each bound (the +Inf bucket left out), as ``SlotStats`` has them."""
        out, acc = [], 0.0
        for b in self.buckets[:-1]:
            acc += b.value
            out.append(int(acc))
        return out

    def set_cumulative(self, cumulative: Sequence[int], count: int, total: float) -> None:
        previous = 0
        for value, n in zip(self.buckets, [*cumulative, count], strict=True):
            value.set(n - previous)
            previous = n
        self.sum.set(total)


class _MemoryFile:
    """Stands in for ``MmapedDict`` in a store without a directory: the same 16-byte slots
    (value, timestamp), in a bytearray, so :class:`_Value` writes both the same way."""

    def __init__(self) -> None:
        self._m = bytearray()
        self._positions: dict[str, int] = {}

    def read_value(self, key: str) -> tuple[float, float]:
        if key not in self._positions:
            self._positions[key] = len(self._m)
            self._m += bytes(16)
        value, stamp = _TWO_DOUBLES(self._m, self._positions[key])
        return value, stamp

    def close(self) -> None:
        """Nothing to release."""


class _Collector:
    def __init__(self, collect: Callable[[], list[Metric]]) -> None:
        self.collect = collect


class MetricStore:
    """One process's metric values: in files of ``directory``, shared with the server's other
    workers; or, without one (an app made in-process), in memory, touching no disk (a bundle's
    server may run on a read-only root filesystem)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._pid = os.getpid()
        self._files: dict[str, MmapedDict | _MemoryFile] = {}
        self._values: dict[str, _Value] = {}
        self._keys: dict[str, tuple[str, str, str, Labels, str]] = {}

    def _value(self, typ: str, metric: str, sample: str, labels: Labels, help_text: str) -> _Value:
        names, values = [k for k, _ in labels], [v for _, v in labels]
        key = mmap_key(metric, sample, names, values, help_text)
        found = self._values.get(key)
        if found is None:
            file = self._files.get(typ)
            if file is None:
                if self.directory is None:
                    file = _MemoryFile()
                else:
                    path = str(self.directory / f"{typ}_{self._pid}.db")
                    file = MmapedDict(path)  # type: ignore[no-untyped-call]
                self._files[typ] = file
            found = self._values[key] = _Value(file, key)
            self._keys[key] = (typ, metric, sample, labels, help_text)
        return found

    def counter(self, name: str, labels: Labels) -> _Value:
        return self._value("counter", name, f"{name}_total", labels, _COUNTERS[name])

    def histogram(self, name: str, bounds: Sequence[float], labels: Labels) -> _Histogram:
        text = _HISTOGRAMS[name]
        buckets = [
            self._value("histogram", name, f"{name}_bucket", (*labels, ("le", le)), text)
            for le in [*(repr(float(b)) for b in bounds), "+Inf"]
        ]
        return _Histogram(
            bounds, buckets, self._value("histogram", name, f"{name}_sum", labels, text)
        )

    def render(self) -> str:
        """Every process's values in the directory, summed (or this store's own values), as
        Prometheus text."""
        registry = CollectorRegistry(auto_describe=False)
        if self.directory is not None:
            MultiProcessCollector(registry, path=str(self.directory))  # type: ignore[no-untyped-call]
        else:
            registry.register(_Collector(self._in_memory))
        return generate_latest(registry).decode()

    def _in_memory(self) -> list[Metric]:
        """The families of this store's values, histogram buckets made cumulative with a count,
        as ``MultiProcessCollector`` makes them from files."""
        families: dict[str, Metric] = {}
        buckets: dict[tuple[str, Labels], dict[float, float]] = {}
        for key, value in self._values.items():
            typ, metric, sample, labels, help_text = self._keys[key]
            family = families.get(metric)
            if family is None:
                family = families[metric] = Metric(metric, help_text, typ)
            le = dict(labels).get("le")
            if le is None:
                family.add_sample(sample, dict(labels), value.value)
            else:
                rest = tuple(item for item in labels if item[0] != "le")
                buckets.setdefault((metric, rest), {})[float(le)] = value.value
        for (metric, rest), by_bound in buckets.items():
            total = 0.0
            for bound, n in sorted(by_bound.items()):
                total += n
                le = "+Inf" if bound == float("inf") else repr(bound)
                families[metric].add_sample(f"{metric}_bucket", {**dict(rest), "le": le}, total)
            families[metric].add_sample(f"{metric}_count", dict(rest), total)
        return list(families.values())

    def close(self) -> None:
        for file in self._files.values():
            file.close()
        self._files.clear()
        self._values.clear()
        self._keys.clear()


# The store of a server worker process (set by use_directory): the counters of every served
# version (FileSlotStats) and the request counts go there. None: apps keep private stores.
_process_store: MetricStore | None = None


def prepare_directory(parent: Path) -> Path:
    """A fresh, empty metrics directory for a server started by this process, under ``parent``.

    Directories of servers no longer running (killed, so never cleaned) are removed, and so is
    anything left in this one: a restarted server counts from zero.
    """
    parent.mkdir(parents=True, exist_ok=True)
    for old in parent.glob(f"{_DIR_PREFIX}*"):
        pid = old.name.removeprefix(_DIR_PREFIX)
        if not pid.isdigit() or not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    directory = parent / f"{_DIR_PREFIX}{os.getpid()}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir()
    return directory


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: not ours to clean
        return True
    return True


def use_directory(directory: Path | None) -> None:
    """Write this process's server metrics into ``directory`` (shared by the server's workers)."""
    global _process_store
    if _process_store is not None:
        _process_store.close()
    _process_store = MetricStore(directory) if directory is not None else None


def slot_stats(name: str, version: int) -> SlotStats:
    """The counters of one served version: in the server's metric files when there are some."""
    if _process_store is None:
        return SlotStats()
    return FileSlotStats(_process_store, name, version)


class FileSlotStats(SlotStats):
    """:class:`SlotStats` whose exported counters live in the server's metric files."""

    def __init__(self, store: MetricStore, name: str, version: int) -> None:
        labels = (("model", name), ("version", str(version)))
        self._requests = store.counter("modelcycle_model_requests", labels)
        self._failed = store.counter("modelcycle_model_failed_requests", labels)
        self._rows = store.counter("modelcycle_scored_rows", labels)
        self._calls = store.counter("modelcycle_predict_calls", labels)
        self._batches = store.histogram("modelcycle_batch_size", BATCH_SIZE_BUCKETS, labels)
        self.predict_seconds = 0.0

    @property
    def requests(self) -> int:
        return int(self._requests.value)

    @requests.setter
    def requests(self, value: int) -> None:
        self._requests.set(value)

    @property
    def failed_requests(self) -> int:
        return int(self._failed.value)

    @failed_requests.setter
    def failed_requests(self, value: int) -> None:
        self._failed.set(value)

    @property
    def rows(self) -> int:
        return int(self._rows.value)

    @rows.setter
    def rows(self, value: int) -> None:
        self._rows.set(value)

    @property
    def predict_calls(self) -> int:
        return int(self._calls.value)

    @predict_calls.setter
    def predict_calls(self, value: int) -> None:
        self._calls.set(value)

    @property
    def batch_rows_sum(self) -> int:
        return int(self._batches.sum.value)

    @batch_rows_sum.setter
    def batch_rows_sum(self, value: int) -> None:
        self._batches.sum.set(value)

    @property
    def batch_buckets(self) -> list[int]:
        return self._batches.cumulative()

    @batch_buckets.setter
    def batch_buckets(self, value: list[int]) -> None:
        self._batches.set_cumulative(value, self._batches.count, self._batches.sum.value)

    def observe_batch(self, rows: int, seconds: float) -> None:
        self._calls.inc()
        self._batches.observe(rows)
        self.predict_seconds += seconds


class Metrics:
    """A scoring app's metrics: request counts by protocol and status, a latency histogram, and
    the served versions' counters (see the module's docstring for where they are kept)."""

    def __init__(self) -> None:
        self._shared = _process_store is not None
        self.store = _process_store if _process_store is not None else MetricStore()
        self._requests: dict[tuple[str, int], _Value] = {}
        self._latency = self.store.histogram(
            "modelcycle_request_duration_seconds", LATENCY_BUCKETS, ()
        )

    def observe(self, protocol: str, status: int, seconds: float) -> None:
        counter = self._requests.get((protocol, status))
        if counter is None:
            labels = (("protocol", protocol), ("code", str(status)))
            counter = self._requests[(protocol, status)] = self.store.counter(
                "modelcycle_requests", labels
            )
        counter.inc()
        self._latency.observe(seconds)

    def render(self, engine: ScoringEngine) -> str:
        slots = engine.slots() if engine.ready else []
        if not self._shared:
            # In-memory version counters: copied into this app's store at each scrape.
            for slot in slots:
                self._copy(slot.name, slot.version, slot.stats)
        lines = [self.store.render().rstrip("\n")]
        lines += [
            "# HELP modelcycle_queue_depth Requests waiting for the model (this worker).",
            "# TYPE modelcycle_queue_depth gauge",
        ]
        for slot in slots:
            labels = f'model="{slot.name}",version="{slot.version}"'
            lines.append(f"modelcycle_queue_depth{{{labels}}} {slot.queue_depth}")
        lines += [
            "# HELP modelcycle_native_threads Threads of each native pool in the predict thread.",
            "# TYPE modelcycle_native_threads gauge",
        ]
        pools: dict[str, int] = {}
        for info in engine.native_thread_info:
            pools[info["api"]] = max(pools.get(info["api"], 0), info["num_threads"])
        for api, threads in sorted(pools.items()):
            lines.append(f'modelcycle_native_threads{{api="{api}"}} {threads}')
        lines.append(f"modelcycle_ready {1 if engine.ready else 0}")
        return "\n".join(lines) + "\n"

    def _copy(self, name: str, version: int, stats: SlotStats) -> None:
        labels = (("model", name), ("version", str(version)))
        store = self.store
        store.counter("modelcycle_model_requests", labels).set(stats.requests)
        store.counter("modelcycle_model_failed_requests", labels).set(stats.failed_requests)
        store.counter("modelcycle_scored_rows", labels).set(stats.rows)
        store.counter("modelcycle_predict_calls", labels).set(stats.predict_calls)
        batches = store.histogram("modelcycle_batch_size", BATCH_SIZE_BUCKETS, labels)
        batches.set_cumulative(stats.batch_buckets, stats.predict_calls, stats.batch_rows_sum)

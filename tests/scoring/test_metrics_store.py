"""The metric store: in memory (an app made in-process, a bundle's server on a read-only root
filesystem) it renders exactly what the workers' files render, and writes nothing to disk."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from modelcycle.scoring._metrics import LATENCY_BUCKETS, MetricStore


def _observe(store: MetricStore) -> None:
    store.counter("modelcycle_requests", (("protocol", "plain"), ("code", "200"))).inc(3)
    store.counter("modelcycle_requests", (("protocol", "v2"), ("code", "400"))).inc()
    latency = store.histogram("modelcycle_request_duration_seconds", LATENCY_BUCKETS, ())
    for seconds in (0.0005, 0.003, 0.003, 9.0):
        latency.observe(seconds)
    batches = store.histogram(
        "modelcycle_batch_size", (1, 2, 4), (("model", "m"), ("version", "1"))
    )
    batches.set_cumulative([1, 1, 3], 4, 11.0)


def test_memory_renders_what_files_render_and_touches_no_disk(tmp_path: Path) -> None:
    files = MetricStore(tmp_path)
    _observe(files)
    before = set(os.listdir(tempfile.gettempdir()))
    memory = MetricStore()
    _observe(memory)
    assert set(os.listdir(tempfile.gettempdir())) == before
    text = memory.render()
    # The same samples; the collector's order follows the files it lists, so lines are compared
    # as sorted lists.
    assert sorted(text.splitlines()) == sorted(files.render().splitlines())
    assert 'modelcycle_requests_total{code="200",protocol="plain"} 3.0' in text
    assert 'modelcycle_request_duration_seconds_bucket{le="0.005"} 3.0' in text
    assert "modelcycle_request_duration_seconds_count 4.0" in text
    assert 'modelcycle_batch_size_bucket{le="+Inf",model="m",version="1"} 4.0' in text
    assert 'modelcycle_batch_size_sum{model="m",version="1"} 11.0' in text


def test_two_processes_files_are_summed(tmp_path: Path) -> None:
    one, other = MetricStore(tmp_path), MetricStore(tmp_path)
    other._pid = one._pid + 1  # another worker's files in the same directory
    for store in (one, other):
        _observe(store)
    text = one.render()
    assert 'modelcycle_requests_total{code="200",protocol="plain"} 6.0' in text
    assert "modelcycle_request_duration_seconds_count 8.0" in text

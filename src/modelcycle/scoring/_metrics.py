"""Prometheus text exposition of one worker process's counters (no client library needed).

With several workers each process counts its own requests; Prometheus sums them per target.
"""

from __future__ import annotations

from collections import defaultdict

from modelcycle.scoring.engine import BATCH_SIZE_BUCKETS, ScoringEngine

__all__ = ["LATENCY_BUCKETS", "Metrics"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Request counts by protocol and status, and a latency histogram."""

    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, int], int] = defaultdict(int)
        self.latency_buckets = [0] * len(LATENCY_BUCKETS)
        self.latency_sum = 0.0
        self.latency_count = 0

    def observe(self, protocol: str, status: int, seconds: float) -> None:
        self.requests[(protocol, status)] += 1
        self.latency_sum += seconds
        self.latency_count += 1
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.latency_buckets[i] += 1

    def render(self, engine: ScoringEngine) -> str:
        lines = [
            "# HELP modelcycle_requests_total Scoring requests answered, by protocol and status.",
            "# TYPE modelcycle_requests_total counter",
        ]
        for (protocol, status), n in sorted(self.requests.items()):
            lines.append(f'modelcycle_requests_total{{protocol="{protocol}",code="{status}"}} {n}')
        lines += [
            "# HELP modelcycle_request_duration_seconds Time to answer a scoring request.",
            "# TYPE modelcycle_request_duration_seconds histogram",
        ]
        for bound, n in zip(LATENCY_BUCKETS, self.latency_buckets, strict=True):
            lines.append(f'modelcycle_request_duration_seconds_bucket{{le="{bound}"}} {n}')
        lines += [
            f'modelcycle_request_duration_seconds_bucket{{le="+Inf"}} {self.latency_count}',
            f"modelcycle_request_duration_seconds_sum {self.latency_sum:.6f}",
            f"modelcycle_request_duration_seconds_count {self.latency_count}",
        ]
        counters = {
            "modelcycle_model_requests_total": ("Requests per model version.", "requests"),
            "modelcycle_model_failed_requests_total": (
                "Requests per model version that failed validation or predict.",
                "failed_requests",
            ),
            "modelcycle_scored_rows_total": ("Rows scored per model version.", "rows"),
            "modelcycle_predict_calls_total": (
                "Calls into the model (one per micro-batch).",
                "predict_calls",
            ),
        }
        slots = engine.slots() if engine.ready else []
        for metric, (text, attr) in counters.items():
            lines += [f"# HELP {metric} {text}", f"# TYPE {metric} counter"]
            for slot in slots:
                labels = f'model="{slot.name}",version="{slot.version}"'
                lines.append(f"{metric}{{{labels}}} {getattr(slot.stats, attr)}")
        lines += [
            "# HELP modelcycle_batch_size Rows per call into the model.",
            "# TYPE modelcycle_batch_size histogram",
        ]
        for slot in slots:
            labels = f'model="{slot.name}",version="{slot.version}"'
            stats = slot.stats
            for bound, n in zip(BATCH_SIZE_BUCKETS, stats.batch_buckets, strict=True):
                lines.append(f'modelcycle_batch_size_bucket{{{labels},le="{bound}"}} {n}')
            lines += [
                f'modelcycle_batch_size_bucket{{{labels},le="+Inf"}} {stats.predict_calls}',
                f"modelcycle_batch_size_sum{{{labels}}} {stats.batch_rows_sum}",
                f"modelcycle_batch_size_count{{{labels}}} {stats.predict_calls}",
            ]
        lines += [
            "# HELP modelcycle_queue_depth Requests waiting for the model.",
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

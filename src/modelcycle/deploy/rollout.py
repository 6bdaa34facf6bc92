"""Blue/green rollout with automatic rollback, and the smoke test that decides it.

The new (green) server starts beside the running (blue) one, on another port. It must become
ready (``/v2/health/ready`` answers 200 within the bound, and its process must not exit) and
pass a smoke test: a real Open Inference Protocol v2 request built from the version's input
example (or, without one, from its signature) must answer 200, name the expected version in
``X-Model-Version``, give one prediction per row, and (when the caller computed them through
the registry) the same predictions. Only then does the endpoint switch to green and blue
stop. Otherwise green stops, blue keeps serving untouched, and the reason is returned.

With a watch, blue keeps running for a window after the switch while the endpoint's router
counts green's answers; if green's error rate or p99 latency goes over its limit (or green
exits), traffic goes back to blue and green stops.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelcycle.deploy.bundle import BundleInfo
from modelcycle.deploy.router import BackendStats
from modelcycle.deploy.targets.base import Instance, Target
from modelcycle.errors import ModelcycleError

__all__ = [
    "RolloutResult",
    "SmokeResult",
    "WatchLimits",
    "WatchResult",
    "rollout",
    "sample_rows",
    "smoke_test",
    "v2_request",
    "wait_ready",
    "watch",
]

# Signature (Arrow) type -> Open Inference Protocol v2 datatype, for building requests.
_TO_V2 = {
    "bool": "BOOL",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "float32": "FP32",
    "float": "FP32",
    "double": "FP64",
    "string": "BYTES",
    "large_string": "BYTES",
}
_SAMPLE_ROWS = 5


@dataclass(frozen=True, slots=True)
class SmokeResult:
    """What the smoke test sent and saw."""

    ok: bool
    reason: str | None
    status: int | None = None
    rows: int = 0
    seconds: float = 0.0
    model_version: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "reason": self.reason,
            "status": self.status,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "model_version": self.model_version,
        }


@dataclass(frozen=True, slots=True)
class WatchLimits:
    """How long to watch green after the switch, and what it must stay within."""

    seconds: float
    max_error_rate: float = 0.05
    max_p99_ms: float = 500.0
    # Before the window ends, judge only on this many requests: one early error is not a rate.
    min_requests: int = 20

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "max_error_rate": self.max_error_rate,
            "max_p99_ms": self.max_p99_ms,
        }


@dataclass(frozen=True, slots=True)
class WatchResult:
    """What the watch saw of green through the router, and its verdict."""

    ok: bool
    reason: str | None
    seconds: float
    requests: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    limits: dict[str, Any] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "reason": self.reason,
            "seconds": round(self.seconds, 3),
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 4),
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "limits": self.limits,
        }


@dataclass(frozen=True, slots=True)
class RolloutResult:
    """How a rollout ended: the green instance, and why it failed when it did."""

    ok: bool
    instance: Instance | None
    reason: str | None
    smoke: SmokeResult | None = None
    ready_seconds: float | None = None
    log_tail: list[str] = field(default_factory=list)
    watch: WatchResult | None = None


def _get(url: str, timeout: float) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - http only
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def wait_ready(url: str, *, is_running: Callable[[], bool], timeout: float) -> str | None:
    """None once ``url``/v2/health/ready answers 200; else why not (exited, or timed out)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        if not is_running():
            return "the new server exited before it was ready"
        try:
            status = _get(f"{url}/v2/health/ready", timeout=2.0)
            if status == 200:
                return None
            last = f"/v2/health/ready answered {status}"
        except (OSError, urllib.error.URLError) as exc:
            last = f"no answer ({getattr(exc, 'reason', exc)})"
        if time.monotonic() >= deadline:
            return f"the new server was not ready within {timeout:g} s ({last})"
        time.sleep(0.1)


def sample_rows(signature: dict[str, Any], example: Any | None) -> dict[str, list[Any]]:
    """Up to five rows (column -> values): from the input example (an Arrow table) when
    there is one, else one row made from the signature (0, 0.0, False, "")."""
    names = [c["name"] for c in signature.get("inputs", [])]
    if example is not None and example.num_rows > 0:
        table = example.slice(0, _SAMPLE_ROWS)
        return {n: table.column(n).to_pylist() for n in names if n in table.column_names}
    row: dict[str, list[Any]] = {}
    for col in signature.get("inputs", []):
        kind = _TO_V2.get(col["type"], "BYTES")
        value: Any = "" if kind == "BYTES" else False if kind == "BOOL" else 0
        if kind.startswith("FP"):
            value = 0.0
        row[col["name"]] = [value]
    return row


def v2_request(signature: dict[str, Any], columns: dict[str, list[Any]]) -> dict[str, Any]:
    """An inference request: one tensor per input column, typed as the signature says."""
    types = {c["name"]: c["type"] for c in signature.get("inputs", [])}
    inputs = []
    for name, values in columns.items():
        inputs.append(
            {
                "name": name,
                "datatype": _TO_V2.get(types.get(name, "string"), "BYTES"),
                "shape": [len(values)],
                "data": values,
            }
        )
    return {"id": "modelcycle-smoke-test", "inputs": inputs}


def _same(answer: list[Any], expected: list[Any]) -> bool:
    if len(answer) != len(expected):
        return False
    for a, e in zip(answer, expected, strict=True):
        if isinstance(a, int | float) and isinstance(e, int | float):
            if not math.isclose(float(a), float(e), rel_tol=1e-6, abs_tol=1e-9):
                return False
        elif a != e:
            return False
    return True


def smoke_test(
    url: str,
    *,
    name: str,
    version: int,
    signature: dict[str, Any],
    columns: dict[str, list[Any]],
    expected: list[Any] | None = None,
    timeout: float = 10.0,
) -> SmokeResult:
    """Send one real v2 request; check the status, the version header and the answer."""
    rows = len(next(iter(columns.values()), []))
    body = json.dumps(v2_request(signature, columns)).encode()
    request = urllib.request.Request(  # noqa: S310 - http only
        f"{url}/v2/models/{name}/infer",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    started = time.perf_counter()

    def fail(reason: str, status: int | None = None, header: str | None = None) -> SmokeResult:
        return SmokeResult(
            False, reason, status, rows, time.perf_counter() - started, model_version=header
        )

    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310
            status = int(resp.status)
            header = resp.headers.get("X-Model-Version")
            payload = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode("utf-8", "replace")
        return fail(
            f"the smoke test request answered {exc.code}: {detail}",
            exc.code,
            exc.headers.get("X-Model-Version"),
        )
    except (OSError, ValueError) as exc:
        return fail(f"the smoke test request failed ({exc})")
    if header != str(version):
        return fail(
            f"the answer names version {header!r} in X-Model-Version, expected {version}",
            status,
            header,
        )
    outputs = {o.get("name"): o for o in payload.get("outputs", [])}
    predict = outputs.get("predict")
    if predict is None or len(predict.get("data", [])) != rows:
        return fail(f"the answer holds no 'predict' output of {rows} row(s)", status, header)
    if expected is not None and not _same(list(predict["data"]), expected):
        return fail(
            f"the server's predictions {predict['data'][:5]} differ from the registry's "
            f"{expected[:5]} on the same rows",
            status,
            header,
        )
    return SmokeResult(True, None, status, rows, time.perf_counter() - started, header)


def _verdict(stats: BackendStats | None, limits: WatchLimits, *, final: bool) -> str | None:
    if stats is None or stats.requests == 0:
        return None
    if not final and stats.requests < limits.min_requests:
        return None
    if stats.error_rate > limits.max_error_rate:
        return (
            f"error rate {stats.error_rate:.3f} ({stats.errors} of {stats.requests} requests: "
            f"{stats.status_5xx} 5xx, {stats.connection_errors} connection errors) exceeds "
            f"the limit {limits.max_error_rate:g}"
        )
    if stats.p99_ms is not None and stats.p99_ms > limits.max_p99_ms:
        return (
            f"p99 latency {stats.p99_ms:.1f} ms over {stats.requests} requests exceeds the "
            f"limit {limits.max_p99_ms:g} ms"
        )
    return None


def watch(
    stats: Callable[[], BackendStats | None],
    limits: WatchLimits,
    *,
    is_running: Callable[[], bool],
    poll: float = 0.25,
) -> WatchResult:
    """Watch green's figures (``stats``: the router's, since the switch) for the window;
    fail as soon as a limit is exceeded or green exits."""
    started = time.monotonic()
    deadline = started + limits.seconds
    seen: BackendStats | None = None
    reason: str | None = None
    while True:
        final = time.monotonic() >= deadline
        if not is_running():
            reason = "the new server exited"
        else:
            try:
                seen = stats() or seen
            except ModelcycleError as exc:
                reason = f"the router's figures are unavailable ({exc})"
            if reason is None:
                reason = _verdict(seen, limits, final=final)
        if reason is not None or final:
            break
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
    elapsed = time.monotonic() - started
    return WatchResult(
        ok=reason is None,
        reason=f"watch ({elapsed:.1f} s of {limits.seconds:g} s): {reason}" if reason else None,
        seconds=elapsed,
        requests=seen.requests if seen else 0,
        errors=seen.errors if seen else 0,
        p50_ms=seen.p50_ms if seen else None,
        p99_ms=seen.p99_ms if seen else None,
        limits=limits.as_dict(),
    )


def rollout(
    target: Target,
    bundle: BundleInfo,
    *,
    endpoint: str,
    workdir: Path,
    port: int | None,
    trust: bool,
    blue: Instance | None,
    smoke: Callable[[Instance], SmokeResult],
    commit: Callable[[Instance], None],
    ready_timeout: float = 60.0,
    watch: Callable[[Instance], WatchResult] | None = None,
    revert: Callable[[Instance, WatchResult], None] | None = None,
) -> RolloutResult:
    """Start green beside ``blue``, check it, then ``commit`` (switch) and stop blue; on any
    failure stop green and leave blue serving.

    With ``watch`` (and a running blue), blue stops only once green passed the watch; when it
    does not, ``revert`` (traffic and records back to blue) runs and green stops."""
    try:
        green = target.start(bundle, endpoint=endpoint, workdir=workdir, port=port, trust=trust)
    except ModelcycleError as exc:
        return RolloutResult(False, None, f"the new server did not start: {exc}")
    started = time.monotonic()
    reason = wait_ready(
        green.url, is_running=lambda: target.is_running(green), timeout=ready_timeout
    )
    ready_seconds = time.monotonic() - started
    result: SmokeResult | None = None
    if reason is None:
        result = smoke(green)
        reason = None if result.ok else f"smoke test failed: {result.reason}"
    if reason is not None:
        target.stop(green)
        tail = target.logs(green, tail=20).splitlines()
        errors = [line for line in tail if line.startswith("error:")]
        if errors and "exited" in reason:
            reason = f"{reason}: {errors[-1][len('error:') :].strip()}"
        return RolloutResult(False, green, reason, result, ready_seconds, tail)
    try:
        commit(green)
    except BaseException:
        target.stop(green)
        raise
    verdict: WatchResult | None = None
    if watch is not None and blue is not None and target.is_running(blue):
        verdict = watch(green)
        if not verdict.ok and revert is not None:
            revert(green, verdict)
            target.stop(green)
            tail = target.logs(green, tail=20).splitlines()
            return RolloutResult(False, green, verdict.reason, result, ready_seconds, tail, verdict)
    if blue is not None and target.is_running(blue):
        target.stop(blue)
    return RolloutResult(True, green, None, result, ready_seconds, watch=verdict)

"""Prepare this machine for container deployments (and the container tests) once, ahead of time.

    .venv/bin/python scripts/prepare-containers.py

Makes the default base image when podman's store lacks it (debootstrap minbase + podman import,
about a minute), downloads a sample bundle's wheels into the shared wheelhouse and builds its
image, which leaves the venv layer in podman's build cache. It calls the container target's own
functions (``modelcycle.deploy.targets.container.prepare``), so a deployment afterwards finds it
all done. ``make pytest`` runs it under ``timeout`` before pytest: making an image inside a
timed test is what made the first ``make test`` on a new machine fail.

Its outcome goes to ``~/.cache/modelcycle/container-prep.json``; the container tests read it to
say why they skip when the base image is missing. Exit status 0 when done or when there is no
container engine (nothing to prepare), 1 when preparing failed (the message says why).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

STATUS_NAME = "container-prep.json"


def _status_file() -> Path:
    from modelcycle.deploy.targets.container import user_cache_dir

    return user_cache_dir() / STATUS_NAME


def _write_status(ok: bool, message: str, **extra: Any) -> None:
    path = _status_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "ok": ok,
        "message": message,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**record, **extra}, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _sample_bundle(root: Path) -> Any:
    """A bundle of a small scikit-learn model (skops): the same flavor and server stack, so the
    same requirements.lock, as the models the tests and most users deploy."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from modelcycle import init_workspace

    ws, _ = init_workspace(root / "ws")
    try:
        x = pd.DataFrame({"age": np.arange(20, dtype=np.int64), "income": np.linspace(1, 2, 20)})
        y = (x["age"] > 9).astype(np.int64)
        ws.registry.register(LogisticRegression().fit(x, y), "prebuild", input_example=x.head(3))
        return ws.deploy.bundle("prebuild/1", root / "bundle")
    finally:
        ws.close()


def main() -> int:
    from modelcycle.deploy.targets.container import prepare
    from modelcycle.errors import ModelcycleError

    if shutil.which("podman") is None and shutil.which("docker") is None:
        message = "no container engine (podman) installed: nothing to prepare"
        print(f"note: {message}; the container tests will be skipped")
        _write_status(False, message)
        return 0
    # Written first, so a run stopped by its time budget leaves a reason behind.
    _write_status(False, "preparing did not finish (stopped by its time budget, or killed)")
    started = time.perf_counter()
    print("preparing container builds (base image, wheelhouse, build cache)...", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="modelcycle-prep-") as tmp:
            bundle = _sample_bundle(Path(tmp))
            done = prepare(Path(tmp) / "cache", bundle=bundle)
    except (ModelcycleError, OSError, TimeoutError) as exc:
        message = f"preparing container builds failed: {exc}".strip()
        print(f"error: {message}", file=sys.stderr)
        print("the container tests will be skipped and say so", file=sys.stderr)
        _write_status(False, message.splitlines()[0], detail=str(exc)[-2000:])
        return 1
    except Exception as exc:  # the status must say why, whatever it was
        traceback.print_exc()
        _write_status(False, f"preparing container builds failed: {exc!r}"[:500])
        return 1
    seconds = time.perf_counter() - started
    base = (
        f"made in {done.base_seconds:.1f} s" if done.base_seconds is not None else "already there"
    )
    build = f"{done.image.seconds:.1f} s" if done.image is not None else "-"
    message = (
        f"{done.engine}: base image {done.base_image} {base}; wheelhouse {done.wheelhouse}; "
        f"sample image built in {build}; {seconds:.1f} s in all"
    )
    print(message)
    _write_status(True, message, seconds=round(seconds, 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

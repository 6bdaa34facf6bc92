"""Where a run's code came from (git) and what it ran on (Python, platform, packages)."""

from __future__ import annotations

import hashlib
import inspect
import os
import platform
import subprocess
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from modelcycle.pipelines.spec import Pipeline

__all__ = ["PACKAGES", "code_version", "environment"]

# The distributions whose versions change what a run computes.
PACKAGES = (
    "modelcycle",
    "numpy",
    "pyarrow",
    "pandas",
    "scikit-learn",
    "scipy",
    "skops",
    "sqlalchemy",
)

_GIT_TIMEOUT = 20


def code_version(pipeline: Pipeline) -> dict[str, Any]:
    """The git state of the repository holding the pipeline's code, and each step's hash.

    ``commit`` is None outside a git repository (or before its first commit); ``dirty``
    counts tracked changes and untracked files; ``diff_sha256`` hashes ``git diff HEAD``.
    """
    where = _source_file(pipeline)
    info: dict[str, Any] = {
        "module_file": str(where) if where else None,
        "repository": None,
        "commit": None,
        "dirty": None,
        "diff_sha256": None,
        "steps": {s.name: s.source_sha256 for s in pipeline.steps},
    }
    if where is None:
        return info
    top = _git(where.parent, "rev-parse", "--show-toplevel")
    if top is None:
        return info
    repo = top.decode().strip()
    info["repository"] = repo
    head = _git(Path(repo), "rev-parse", "--verify", "HEAD")
    info["commit"] = head.decode().strip() if head else None
    status = _git(Path(repo), "status", "--porcelain")
    info["dirty"] = bool(status and status.strip())
    if info["dirty"] and head:
        diff = _git(Path(repo), "diff", "HEAD", "--no-color", "--no-ext-diff", "--binary")
        info["diff_sha256"] = hashlib.sha256(diff or b"").hexdigest()
    return info


def environment() -> dict[str, Any]:
    """Python version, platform and the versions of the packages that matter."""
    packages: dict[str, str | None] = {}
    for dist in PACKAGES:
        try:
            packages[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            packages[dist] = None
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": packages,
    }


def _source_file(pipeline: Pipeline) -> Path | None:
    for s in pipeline.steps:
        try:
            found = inspect.getsourcefile(s.fn)
        except TypeError:
            continue
        if found and os.path.exists(found):
            return Path(found).resolve()
    return None


def _git(cwd: Path, *args: str) -> bytes | None:
    # GIT_OPTIONAL_LOCKS=0: reading the state must not take the index lock from the user.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            timeout=_GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None

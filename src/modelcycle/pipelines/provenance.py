"""Where a run's code came from (git) and what it ran on (Python, platform, packages)."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from modelcycle.pipelines.spec import Pipeline

__all__ = ["PACKAGES", "code_version", "environment", "strip_credentials"]

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
_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the installed modelcycle package


def code_version(pipeline: Pipeline, *, cwd: Path | None = None) -> dict[str, Any]:
    """The git state of the user's code for a run of ``pipeline``, and each step's hash.

    The code is the module that defines the pipeline; for a pipeline defined inside
    modelcycle (the built-in trainer) or in a REPL it is the working directory ``cwd``
    (default: the process's), never modelcycle's own source tree. Outside a git repository
    every git field is None. ``commit`` is None before the first commit; ``dirty`` counts
    tracked changes and untracked files; ``diff_sha256`` hashes ``git diff HEAD``;
    ``remote`` is the ``origin`` (else first) remote's URL without any user or password.
    """
    location, source = _code_location(pipeline, cwd)
    info: dict[str, Any] = {
        "source": source,
        "path": str(location) if location else None,
        "module_file": pipeline.module_file if source == "pipeline module" else None,
        "repository": None,
        "commit": None,
        "branch": None,
        "dirty": None,
        "diff_sha256": None,
        "remote": None,
        "steps": {s.name: s.source_sha256 for s in pipeline.steps},
    }
    top = _git(location, "rev-parse", "--show-toplevel") if location else None
    if top is None:
        return info
    repo = Path(top.decode().strip())
    info["repository"] = str(repo)
    head = _git(repo, "rev-parse", "--verify", "HEAD")
    info["commit"] = head.decode().strip() if head else None
    branch = _git(repo, "symbolic-ref", "--quiet", "--short", "HEAD")
    info["branch"] = branch.decode().strip() if branch else None  # None when detached
    status = _git(repo, "status", "--porcelain")
    info["dirty"] = bool(status and status.strip())
    if info["dirty"] and head:
        diff = _git(repo, "diff", "HEAD", "--no-color", "--no-ext-diff", "--binary")
        info["diff_sha256"] = hashlib.sha256(diff or b"").hexdigest()
    info["remote"] = _remote(repo)
    return info


def strip_credentials(url: str) -> str:
    """``url`` without a user name or password (``https://user:token@host/x`` -> ``https://host/x``).

    scp-like addresses (``git@host:org/repo.git``) carry a login name, not a secret: kept.
    """
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _code_location(pipeline: Pipeline, cwd: Path | None) -> tuple[Path | None, str]:
    """The folder whose repository holds the run's code, and which rule chose it."""
    found = pipeline.module_file
    if found and os.path.exists(found):
        path = Path(found).resolve()
        # The built-in pipelines live in modelcycle's package: the user's code is where they
        # run it from, not the folder modelcycle was installed from.
        if not path.is_relative_to(_PACKAGE_DIR):
            return path.parent, "pipeline module"
    try:
        return (cwd or Path.cwd()).resolve(), "working directory"
    except OSError:  # the working directory was deleted under us: no repository to read
        return None, "working directory"


def _remote(repo: Path) -> str | None:
    names = _git(repo, "remote")
    listed = names.decode().split() if names else []
    if not listed:
        return None
    name = "origin" if "origin" in listed else listed[0]
    url = _git(repo, "remote", "get-url", name)
    return strip_credentials(url.decode().strip()) if url else None


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

"""What the CI tests share: a small data set, a git repository, and CI environments."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

# The variables a GitHub Actions runner sets (the subset modelcycle reads), for run 4242.
GITHUB_ENV = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_RUN_ID": "4242",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/credit-model",
    "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
    "GITHUB_REF": "refs/heads/main",
    "GITHUB_ACTOR": "octocat",
}
GITHUB_RUN_URL = "https://github.com/acme/credit-model/actions/runs/4242"


def write_csv(path: Path, rows: int = 300, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "label": (x1 + x2 > 0).astype(int)})
    frame.to_csv(path, index=False)
    return path


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return proc.stdout.strip()


def git_repo(path: Path) -> Path:
    """A real repository at ``path`` with one commit; the workspace's state folder ignored."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    (path / ".gitignore").write_text(".modelcycle/\n*.csv\n", encoding="utf-8")
    (path / "train.md").write_text("how we train\n", encoding="utf-8")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "first")
    git(path, "remote", "add", "origin", "https://user:secret@github.com/acme/credit-model.git")
    return path

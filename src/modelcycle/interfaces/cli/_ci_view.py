"""How commands print CI provenance and commit links (runs show, models show)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["ci_line", "commit_link"]

# git@host:org/repo(.git) and https://host/org/repo(.git): the forms a remote's URL takes.
_SCP = re.compile(r"^[\w.-]+@(?P<host>[\w.-]+):(?P<path>.+?)(?:\.git)?/?$")
_HTTP = re.compile(r"^https?://(?P<host>[^/]+)/(?P<path>.+?)(?:\.git)?/?$")


def ci_line(ci: Mapping[str, Any] | None) -> str:
    """``github run URL, commit abc123 on refs/heads/main, by octocat``, or ``-`` outside CI."""
    if not ci:
        return "-"
    parts = [f"{ci.get('provider')} run {ci.get('run_url') or '(no URL)'}"]
    if ci.get("commit"):
        parts.append(f"commit {ci['commit']}" + (f" on {ci['ref']}" if ci.get("ref") else ""))
    if ci.get("actor"):
        parts.append(f"triggered by {ci['actor']}")
    return ", ".join(parts)


def commit_link(remote: str | None, commit: str | None) -> str | None:
    """A browser link to ``commit`` when ``remote`` is a GitHub, GitLab or similar URL.

    GitHub and GitLab both answer ``https://HOST/ORG/REPO/commit/SHA``; Azure Repos uses the same
    path under ``_git``. Remotes of other forms (a local path) give None.
    """
    if not remote or not commit:
        return None
    found = _SCP.match(remote) or _HTTP.match(remote)
    if found is None:
        return None
    return f"https://{found['host']}/{found['path']}/commit/{commit}"

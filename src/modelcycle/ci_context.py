"""Which CI run is acting: read from the providers' standard variables, once, at the entry point.

GitHub Actions, GitLab CI and Azure Pipelines each set variables that name the provider, the run,
the commit, the ref and the user who triggered it. :func:`detect_ci` turns them into one small
record that the settings carry down: the store stamps every audit event with it, runs keep it
with their provenance, and the CLI's default actor becomes ``ci:<provider>:<actor>``.

Only these documented variables are read, never tokens or secrets the runner also exposes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

__all__ = ["PROVIDERS", "CiContext", "detect_ci"]

PROVIDERS = ("github", "gitlab", "azure")


@dataclass(frozen=True, slots=True)
class CiContext:
    """The CI run this process belongs to; any field the runner did not set is None."""

    provider: str
    run_url: str | None
    commit: str | None
    ref: str | None
    actor: str | None

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)

    @property
    def default_actor(self) -> str:
        """``ci:github:octocat``: who acts when neither a token nor MODELCYCLE_ACTOR says."""
        return f"ci:{self.provider}:{self.actor or 'unknown'}"


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _github(env: Mapping[str, str]) -> CiContext | None:
    if env.get("GITHUB_ACTIONS", "").lower() != "true":
        return None
    server, repo, run = (
        _get(env, k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    url = f"{server.rstrip('/')}/{repo}/actions/runs/{run}" if server and repo and run else None
    return CiContext(
        "github", url, _get(env, "GITHUB_SHA"), _get(env, "GITHUB_REF"), _get(env, "GITHUB_ACTOR")
    )


def _gitlab(env: Mapping[str, str]) -> CiContext | None:
    if env.get("GITLAB_CI", "").lower() != "true":
        return None
    return CiContext(
        "gitlab",
        _get(env, "CI_PIPELINE_URL"),
        _get(env, "CI_COMMIT_SHA"),
        _get(env, "CI_COMMIT_REF_NAME"),
        _get(env, "GITLAB_USER_LOGIN"),
    )


def _azure(env: Mapping[str, str]) -> CiContext | None:
    if env.get("TF_BUILD", "").lower() != "true":
        return None
    collection, project, build = (
        _get(env, k) for k in ("SYSTEM_COLLECTIONURI", "SYSTEM_TEAMPROJECT", "BUILD_BUILDID")
    )
    url = (
        f"{collection.rstrip('/')}/{project}/_build/results?buildId={build}"
        if collection and project and build
        else None
    )
    return CiContext(
        "azure",
        url,
        _get(env, "BUILD_SOURCEVERSION"),
        _get(env, "BUILD_SOURCEBRANCH"),
        _get(env, "BUILD_REQUESTEDFOR"),
    )


# One reader per provider, tried in this order; the first whose marker variable is set wins.
_READERS: dict[str, Callable[[Mapping[str, str]], CiContext | None]] = {
    "github": _github,
    "gitlab": _gitlab,
    "azure": _azure,
}


def detect_ci(env: Mapping[str, str]) -> CiContext | None:
    """The CI run described by ``env``, or None outside CI."""
    for reader in _READERS.values():
        found = reader(env)
        if found is not None:
            return found
    return None

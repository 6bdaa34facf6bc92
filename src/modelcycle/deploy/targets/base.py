"""The one small interface every deployment target implements.

A target starts a bundle's server somewhere, says whether it still runs, points an endpoint
at it, stops it and shows its logs. Everything it needs to find an instance again (from
another process, later) is in :class:`Instance`, which the deployment row stores as JSON.
The rollout (:mod:`modelcycle.deploy.rollout`) orchestrates: readiness, smoke test, switch.
"""

from __future__ import annotations

import contextlib
import json
import os
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from modelcycle.deploy.bundle import BundleInfo

__all__ = ["HandOver", "Instance", "Target"]


@dataclass(frozen=True, slots=True)
class Instance:
    """One running (or once running) server of a bundle."""

    target: str
    url: str
    host: str
    port: int
    workdir: str
    pid: int | None = None
    log: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Instance:
        return cls(
            target=str(data["target"]),
            url=str(data["url"]),
            host=str(data["host"]),
            port=int(data["port"]),
            workdir=str(data["workdir"]),
            pid=int(data["pid"]) if data.get("pid") is not None else None,
            log=data.get("log"),
            extra=dict(data.get("extra") or {}),
        )


@dataclass(frozen=True, slots=True)
class HandOver:
    """What a target that runs bundles elsewhere did with one: took it (``applied`` there, or
    only written for the user to apply) or refused it (``reason``)."""

    taken: bool
    applied: bool
    details: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None


class Target(ABC):
    """Where a bundle runs: ``local`` (processes), ``container``, ``kubernetes``."""

    name: ClassVar[str]
    # False for a target whose servers run elsewhere (a cluster): the deploy service hands the
    # bundle over instead of a blue/green rollout with readiness and smoke test from here.
    runs_here: ClassVar[bool] = True
    root: Path  # ROOT/ENDPOINT/ holds each endpoint's attempts and its current pointer

    def check(self) -> None:  # noqa: B027 - most targets need nothing checked
        """Raise (NotReady, saying what to install) when this target cannot run here."""

    def hand_over(self, bundle: BundleInfo) -> HandOver:
        """Give the bundle to what runs it elsewhere (targets with ``runs_here`` False)."""
        raise NotImplementedError(f"the {self.name} target runs bundles here")

    def stop_hint(self, details: dict[str, Any]) -> str | None:
        """For a target that cannot stop its servers from here: how the user does it."""
        return None

    @abstractmethod
    def start(
        self,
        bundle: BundleInfo,
        *,
        endpoint: str,
        workdir: Path,
        port: int | None,
        trust: bool = False,
    ) -> Instance:
        """Start the bundle's server and return at once (readiness is the caller's to wait)."""

    @abstractmethod
    def is_running(self, instance: Instance) -> bool:
        """Whether the instance's server still runs."""

    @abstractmethod
    def stop(self, instance: Instance, *, timeout: float = 10.0) -> bool:
        """Stop the server (gracefully, then by force); False if it was not running."""

    def activate(self, endpoint: str, instance: Instance, record: dict[str, Any]) -> None:
        """Point ``endpoint`` at ``instance``: ``ROOT/ENDPOINT/current.json`` (replaced
        atomically) and the ``current`` symlink to the instance's folder.

        ``url``/``port`` in the pointer are the endpoint's stable ones when ``record`` gives
        them (its router), else the instance's; ``backend_url``/``backend_port`` the
        instance's."""
        folder = self.root / endpoint
        folder.mkdir(parents=True, exist_ok=True)
        pointer = {
            "endpoint": endpoint,
            "url": instance.url,
            "port": instance.port,
            **record,
            "backend_url": instance.url,
            "backend_port": instance.port,
        }
        tmp = folder / ".current.json.tmp"
        tmp.write_text(json.dumps(pointer, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, folder / "current.json")
        link_tmp = folder / ".current.tmp"
        with contextlib.suppress(FileNotFoundError):
            link_tmp.unlink()
        link_tmp.symlink_to(Path(instance.workdir).name)
        os.replace(link_tmp, folder / "current")

    def deactivate(self, endpoint: str) -> None:
        """The endpoint points nowhere (after a stop)."""
        folder = self.root / endpoint
        for name in ("current.json", "current"):
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()

    def logs(self, instance: Instance, *, tail: int | None = None) -> str:
        """The server's log text (the last ``tail`` lines), or '' when there is none."""
        if not instance.log:
            return ""
        try:
            text = Path(instance.log).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        if tail is not None:
            text = "\n".join(text.splitlines()[-tail:]) + ("\n" if text else "")
        return text

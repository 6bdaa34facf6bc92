"""Hot swap: follow an alias (``credit@champion``) and swap in the version it moves to.

An :class:`AliasFollower` knows, per followed name, how to resolve the alias to a version
number (a cheap metadata read) and how to load a version (the registry's hash-checked load).
:meth:`AliasFollower.check` resolves each alias and, when it moved, loads the new version
beside the old one and hands it to :meth:`ScoringEngine.swap_default`, which publishes it in
one assignment: requests already on the old version finish there, new ones go to the new
one, none fails. The server runs ``check`` every ``poll_seconds`` in a thread, and at once on
``POST /admin/reload``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from modelcycle.registry import LoadedModel
from modelcycle.scoring.engine import ScoringEngine

__all__ = ["AliasFollower", "FollowedAlias", "SwapReport"]

_log = logging.getLogger("modelcycle.scoring")


@dataclass(frozen=True, slots=True)
class FollowedAlias:
    """``ref`` (``NAME@ALIAS``) served as ``name``: how to resolve it and load a version."""

    name: str
    ref: str
    resolve: Callable[[], int]
    load: Callable[[int], LoadedModel]


@dataclass(frozen=True, slots=True)
class SwapReport:
    name: str
    ref: str
    old_version: int | None
    new_version: int


class AliasFollower:
    """Checks followed aliases and swaps moved ones into the engine (one check at a time)."""

    def __init__(self, engine: ScoringEngine, follows: Sequence[FollowedAlias]) -> None:
        self.engine = engine
        self.follows = list(follows)
        self._lock = threading.Lock()
        self.swaps = 0
        self.failures = 0

    def check(self) -> list[SwapReport]:
        """Resolve every alias; swap in each version that changed. Raises the first failure."""
        done: list[SwapReport] = []
        with self._lock:
            for follow in self.follows:
                current = self.engine.get(follow.name)
                version = follow.resolve()
                if version == current.version:
                    continue
                model = follow.load(version)
                self.engine.swap_default(model)
                self.swaps += 1
                _log.info("%s moved: %s/%d -> %s/%d", follow.ref, follow.name,
                          current.version, follow.name, version)  # fmt: skip
                done.append(SwapReport(follow.name, follow.ref, current.version, version))
        return done

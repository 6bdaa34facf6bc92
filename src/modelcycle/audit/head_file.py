"""The chain head kept outside the database, so that deleting the newest events shows.

The file is advanced after each commit, under an exclusive ``flock`` and only forwards, so
concurrent writers leave it at the highest head any of them committed. A crash between the
commit and the file write leaves the file one step behind, never ahead: verification treats
it as a lower bound.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from modelcycle.entities import ChainHead
from modelcycle.errors import IntegrityError

__all__ = ["HeadFile"]


class HeadFile:
    """``{"seq": N, "hash": "..."}`` in one small JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> ChainHead | None:
        """The recorded head, or None when nothing was recorded yet."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return _parse(text, self.path)

    def advance(self, head: ChainHead) -> None:
        """Record ``head`` unless the file already records a later one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.read()
            if current is not None and current.seq >= head.seq:
                return
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"seq": head.seq, "hash": head.hash}) + "\n", "utf-8")
            os.replace(tmp, self.path)

    def reset(self, head: ChainHead) -> None:
        """Record ``head`` even if it is behind: only when an admin acknowledges a break
        (a truncated log cannot reach the old head again; the acknowledged head is the new
        lower bound)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"seq": head.seq, "hash": head.hash}) + "\n", "utf-8")
            os.replace(tmp, self.path)


def _parse(text: str, path: Path) -> ChainHead:
    try:
        data = json.loads(text)
        return ChainHead(seq=int(data["seq"]), hash=str(data["hash"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"audit head file {path} is unreadable ({exc})") from exc

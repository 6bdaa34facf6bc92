"""The "compromised" mark: set when verification finds a broken chain, cleared by an admin.

It is kept twice, as a row in the metadata database (``workspace_info``, key
:data:`COMPROMISED_KEY`) and as this small JSON file beside the head file, so that deleting one
of them does not clear it: the store refuses audited writes while either exists (decision 0005).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from modelcycle.errors import IntegrityError

__all__ = ["COMPROMISED_KEY", "CompromiseFile", "refusal"]

COMPROMISED_KEY = "audit.compromised"


class CompromiseFile:
    """``{"seq": N, "kind": "...", ...}`` while the workspace is marked compromised."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            # A damaged mark is still a mark: refuse rather than guess.
            return {"seq": None, "kind": "unknown", "detail": f"{self.path} is unreadable"}
        return data if isinstance(data, dict) else {"seq": None, "kind": "unknown"}

    def write(self, mark: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(mark, sort_keys=True) + "\n", "utf-8")
        os.replace(tmp, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def refusal(mark: dict[str, Any]) -> IntegrityError:
    """The error every audited write raises while the workspace is marked compromised."""
    seq = mark.get("seq")
    where = f"at event {seq}" if seq is not None else "(see `modelcycle audit verify`)"
    kind = f" ({mark['kind']})" if mark.get("kind") else ""
    return IntegrityError(
        f"the audit chain is broken {where}{kind}: changes are refused until an admin "
        "acknowledges it with `modelcycle audit acknowledge --note TEXT`"
    )

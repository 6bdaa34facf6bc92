"""What every command shares: the consoles, the workspace opener, and time parsing."""

from __future__ import annotations

from rich.console import Console

from modelcycle.audit import parse_since as _parse_since
from modelcycle.workspace import Workspace

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def open_workspace() -> Workspace:
    """The workspace for this command: MODELCYCLE_HOME, else the current folder upward."""
    return Workspace()


def parse_since(value: str, *, field: str = "--since") -> str:
    """``30m``, ``2h``, ``7d`` ago, or an ISO 8601 time; returned as the log's UTC text."""
    return _parse_since(value, field=field)

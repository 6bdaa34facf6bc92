"""Pipeline modules written into the workspace folder and imported by reference."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No stale bytecode between rewrites of a module; no test's modules leak to the next."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    before = set(sys.modules)
    path = list(sys.path)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("mc_"):
            del sys.modules[name]
    sys.path[:] = path

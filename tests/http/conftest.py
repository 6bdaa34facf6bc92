"""The API fixture: a real server on 127.0.0.1 over the ``workspace`` fixture (both backends)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _api import Api, serve

from modelcycle import Workspace


@pytest.fixture
def api(workspace: Workspace) -> Iterator[Api]:
    with serve(workspace) as running:
        yield running

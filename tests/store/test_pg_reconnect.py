"""A pooled PostgreSQL connection cut by the server is replaced, not handed to a request.

The pool pings a connection only after it sat idle (a ping per checkout cost a round trip per
API request); these tests cut the server side of every pooled connection, as a database restart
or an idle timeout does, and check the next read works.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text

from modelcycle import Workspace


def _cut_other_connections(db_url: str) -> int:
    """Terminate every other backend of this database (what a restart does to them)."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
            conn.commit()
    finally:
        engine.dispose()
    return int(killed)


def test_a_connection_cut_while_idle_is_replaced_before_use(workspace: Workspace) -> None:
    if workspace.metadata.dialect != "postgresql":
        pytest.skip("SQLite has no server to cut the connection")
    before = workspace.audit.head()
    assert _cut_other_connections(workspace.metadata.url) >= 1
    time.sleep(1.2)  # longer than the idle time after which a pooled connection is pinged
    # Each of these would raise NotReady ("terminating connection ...") without the ping.
    for _ in range(3):
        assert workspace.audit.head() == before
    with workspace.metadata.write(actor="tester", action="test.note", subject="workspace") as tx:
        tx.record("audit.note", "workspace", {"text": "after the cut"})
    assert workspace.audit.head().seq > before.seq

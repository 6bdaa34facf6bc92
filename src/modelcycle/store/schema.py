"""Schema versions: where a database stands against this code, and the migrations that move it.

Migrations run only when asked (``modelcycle init`` and ``modelcycle db upgrade``), never as a
side effect of opening a workspace.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

from modelcycle.errors import NotReady

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["SCHEMA_HEAD", "SchemaStatus", "check_schema", "schema_status", "upgrade_schema"]

# The newest migration this code knows; a test keeps it equal to the migrations' head.
SCHEMA_HEAD = "0015"

_MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """The database's revision (None when it has no modelcycle schema) against the code's."""

    current: str | None
    head: str
    known: bool  # the current revision is one this code has a migration for

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _config(connection: Connection | None = None) -> Config:
    # Alembic is imported only when a migration or an unknown revision needs it: opening a
    # workspace at the current revision (every command) never does.
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def schema_status(connection: Connection) -> SchemaStatus:
    """Read the revision stamped in the database."""
    current: str | None = None
    if inspect(connection).has_table("alembic_version"):
        current = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    if current is None or current == SCHEMA_HEAD:
        return SchemaStatus(current, SCHEMA_HEAD, known=True)
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_config())
    known = any(r.revision == current for r in script.walk_revisions())
    return SchemaStatus(current, SCHEMA_HEAD, known=known)


def check_schema(connection: Connection, where: str) -> None:
    """Refuse a database that is empty, behind, or from a newer modelcycle."""
    status = schema_status(connection)
    if status.up_to_date:
        return
    if status.current is None:
        raise NotReady(f"{where} has no modelcycle schema; run `modelcycle init` first")
    if status.known:
        raise NotReady(
            f"{where} is at schema revision {status.current} but this modelcycle needs "
            f"{status.head}; run `modelcycle db upgrade`"
        )
    raise NotReady(
        f"{where} is at schema revision {status.current}, which this modelcycle does not know "
        "(it was written by a newer modelcycle); upgrade modelcycle instead of using this version"
    )


def upgrade_schema(connection: Connection, target: str = "head") -> None:
    """Run the migrations up to ``target`` on ``connection`` (committed by the caller)."""
    status = schema_status(connection)
    if not status.known:
        check_schema(connection, "the database")
    from alembic import command

    command.upgrade(_config(connection), target)

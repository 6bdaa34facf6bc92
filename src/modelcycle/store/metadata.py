"""The metadata database: engines, read and write transactions, and the audit append.

Every change goes through :meth:`MetadataStore.write`, which takes the action it records up
front: the change and its audit event commit together or not at all, so a change without an
event cannot be written. Observations that change no asset (prediction log rows, feedback)
go through :meth:`MetadataStore.append_rows` instead, in bulk and without an audit event.

SQLite (the embedded default) runs in WAL mode; write transactions start with
``BEGIN IMMEDIATE`` so concurrent writers queue on the database lock instead of failing
half-way. PostgreSQL write transactions start by locking the audit head row, so there too
writers run one at a time (reads never wait): metadata writes are few and small, and one
order for all of them keeps version numbering and the chain simple.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    create_engine,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from modelcycle.audit import ACK_ACTION, COMPROMISED_KEY, CompromiseFile, next_event, refusal
from modelcycle.audit.chain import canonical_json, validate_action
from modelcycle.entities import AuditEvent, ChainHead
from modelcycle.errors import Conflict, InvalidInput, NotReady
from modelcycle.store import tables
from modelcycle.store.schema import check_schema, upgrade_schema

__all__ = ["MetadataStore", "WriteTx", "caused_by", "normalize_db_url", "redact_db_url"]

_LOCK_HEAD = (
    select(tables.audit_head.c.seq, tables.audit_head.c.hash)
    .where(tables.audit_head.c.id == 1)
    .with_for_update()
)
_VALID_SCHEMES = ("sqlite:///PATH", "postgresql+psycopg://USER@HOST:PORT/DB")


# The job whose action is running in this context, if any: every event written meanwhile
# names it, so the audit trail can answer "what caused this?" as a chain of jobs and events.
_CAUSED_BY: ContextVar[str | None] = ContextVar("modelcycle_caused_by", default=None)


@contextmanager
def caused_by(job_id: str) -> Iterator[None]:
    """Mark every audit event written inside the block as caused by ``job:JOB_ID``."""
    token = _CAUSED_BY.set(f"job:{job_id}")
    try:
        yield
    finally:
        _CAUSED_BY.reset(token)


def normalize_db_url(url: str) -> str:
    """Check the URL's scheme and pick the psycopg 3 driver for PostgreSQL."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInput(
            f"{redact_db_url(url)!r} is not a database URL; expected one of {_VALID_SCHEMES}",
            field="db_url",
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql" or parsed.drivername == "postgres":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if backend == "sqlite" and parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        if not parsed.database or parsed.database == ":memory:":
            raise InvalidInput("SQLite needs a file path: sqlite:///PATH", field="db_url")
        return url
    raise InvalidInput(
        f"scheme {parsed.drivername!r} is not supported; expected one of {_VALID_SCHEMES}",
        field="db_url",
    )


def redact_db_url(url: str) -> str:
    """The URL with any password hidden, safe for messages and the audit log."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


@dataclass
class WriteTx:
    """An open write transaction: the connection to change things with, and its audit events.

    The first event is given to :meth:`MetadataStore.write`; its ``subject`` and ``payload``
    may be filled in during the transaction (a version number known only after the insert).
    """

    conn: Connection
    action: str
    subject: str
    payload: dict[str, Any]
    extra: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list)

    def record(self, action: str, subject: str, payload: dict[str, Any] | None = None) -> None:
        """Append one more audit event to this transaction."""
        validate_action(action)
        self.extra.append((action, subject, dict(payload or {})))


class MetadataStore:
    """The metadata database of one workspace. Constructing it connects to nothing."""

    def __init__(
        self,
        url: str,
        *,
        on_commit: Callable[[ChainHead], None] | None = None,
        compromise: CompromiseFile | None = None,
        ci: Mapping[str, str | None] | None = None,
    ) -> None:
        self.url = normalize_db_url(url)
        # The CI run acting (settings.ci): every event this store writes names it.
        self.ci: dict[str, str | None] | None = dict(ci) if ci else None
        self._on_commit = on_commit
        self._compromise = compromise
        self._engine: Engine | None = None
        self._insert_cache: dict[tuple[str, tuple[str, ...]], str] = {}

    @property
    def dialect(self) -> str:
        return make_url(self.url).get_backend_name()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = _make_engine(self.url)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- schema -----------------------------------------------------------------------------

    def check_schema(self) -> None:
        """Raise NotReady unless the database is at this code's schema revision."""
        with self._connect() as conn:
            check_schema(conn, f"the database {redact_db_url(self.url)}")

    def upgrade(self, target: str = "head") -> None:
        """Run the migrations (``modelcycle init`` and ``modelcycle db upgrade`` only)."""
        with self._connect() as conn:
            upgrade_schema(conn, target)
            conn.commit()

    # -- transactions -----------------------------------------------------------------------

    @contextmanager
    def read(self, *, snapshot: bool = False) -> Iterator[Connection]:
        """A read-only transaction; ``snapshot`` gives one consistent view across statements."""
        with self._connect() as conn:
            if self.dialect == "postgresql":
                # READ COMMITTED takes a fresh snapshot for every statement anyway, so a plain
                # read in autocommit sees exactly what it would between BEGIN and COMMIT, without
                # those two round trips (half of a small API read's time on a busy machine).
                level = "REPEATABLE READ" if snapshot else "AUTOCOMMIT"
                conn = conn.execution_options(isolation_level=level)
            with conn.begin():
                yield conn

    @contextmanager
    def write(
        self,
        *,
        actor: str,
        action: str,
        subject: str,
        payload: dict[str, Any] | None = None,
    ) -> Iterator[WriteTx]:
        """A write transaction that commits together with its audit event(s)."""
        validate_action(action)
        with self._connect(write=True) as conn:
            tx = WriteTx(conn, action, subject, dict(payload or {}))
            try:
                with conn.begin():
                    if self.dialect == "postgresql":
                        # Take the chain lock first: writers then run one at a time, as
                        # SQLite's BEGIN IMMEDIATE makes them, so "read the latest version,
                        # insert the next" is safe in every stage without retry loops.
                        conn.execute(_LOCK_HEAD)
                    if action != ACK_ACTION:
                        self._refuse_if_compromised(conn)
                    yield tx
                    tx.events = self._append_events(conn, actor, tx)
            except SAIntegrityError as exc:
                raise Conflict(
                    f"{action} on {tx.subject!r} clashes with what is stored ({exc.orig})"
                ) from exc
        if self._on_commit is not None and tx.events:
            self._on_commit(ChainHead(tx.events[-1].seq, tx.events[-1].hash))

    def compromise_mark(self, conn: Connection) -> dict[str, Any] | None:
        """The "chain broken" mark from the file beside the head file, else the database."""
        mark = self._compromise.read() if self._compromise is not None else None
        if mark is not None:
            return mark
        text = conn.execute(
            select(tables.workspace_info.c.value).where(
                tables.workspace_info.c.key == COMPROMISED_KEY
            )
        ).scalar()
        if text is None:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        return data if isinstance(data, dict) else {"seq": None, "kind": "unknown"}

    def _refuse_if_compromised(self, conn: Connection) -> None:
        # One primary-key read (and one file open) per write: once verification has found the
        # chain broken, nothing more is written to it until an admin acknowledges the break.
        mark = self.compromise_mark(conn)
        if mark is not None:
            raise refusal(mark)

    def _append_events(self, conn: Connection, actor: str, tx: WriteTx) -> list[AuditEvent]:
        # The head row lock orders all writers: the chain gets exactly one next event each time.
        row = conn.execute(_LOCK_HEAD).one()
        head = ChainHead(int(row.seq), str(row.hash))
        events: list[AuditEvent] = []
        cause = _CAUSED_BY.get()
        for action, subject, payload in [(tx.action, tx.subject, tx.payload), *tx.extra]:
            if cause is not None:
                payload = {**payload, "caused_by": cause}
            if self.ci is not None:
                payload = {**payload, "ci": self.ci}
            ev = next_event(head, actor=actor, action=action, subject=subject, payload=payload)
            events.append(ev)
            head = ChainHead(ev.seq, ev.hash)
        conn.execute(
            insert(tables.audit_events),
            [
                {
                    "seq": ev.seq,
                    "at": ev.at,
                    "actor": ev.actor,
                    "action": ev.action,
                    "subject": ev.subject,
                    "payload": canonical_json(ev.payload),
                    "prev_hash": ev.prev_hash,
                    "hash": ev.hash,
                }
                for ev in events
            ],
        )
        conn.execute(
            update(tables.audit_head)
            .where(tables.audit_head.c.id == 1)
            .values(seq=head.seq, hash=head.hash)
        )
        return events

    @contextmanager
    def unaudited(self) -> Iterator[Connection]:
        """A short write transaction for bookkeeping that changes no asset: no audit event.

        Heartbeats of running work, job lease renewals, the rule dispatcher's cursor, batch
        chunk rows (decision 0003). Same lock as audited writes, so it queues rather than
        fails; anything that changes an asset goes through :meth:`write`.
        """
        with self._connect(write=True) as conn, conn.begin():
            yield conn

    def append_rows(
        self,
        table: Table,
        rows: Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]],
        *,
        columns: Sequence[str] | None = None,
        timeout: float | None = None,
        replace_where: ColumnElement[bool] | None = None,
    ) -> int:
        """Bulk-insert operational rows that are observations, not changes: no audit event.

        Prediction log rows and ground-truth feedback record what the scoring server saw; they
        change no asset (data set, model, alias, deployment, token), arrive by the thousand per
        second, and would drown the audit chain. They skip it on purpose (decision 0003), as
        :meth:`unaudited` bookkeeping does; any change to an asset goes through :meth:`write`.

        ``timeout`` (seconds) bounds the wait for the write lock and the statement, so a caller
        with somewhere else to put the rows (the prediction log's spill file) is not held up;
        it raises :class:`NotReady` when the database is locked, slow or down.
        ``replace_where`` deletes the rows it matches first, in the same transaction (an
        idempotent re-ingest). Returns the number of rows inserted.

        With ``columns``, ``rows`` are tuples of values in that order, handed to the driver's
        ``executemany`` as they are: no per-row dictionary, no SQLAlchemy parameter processing
        (half the cost of a row for the prediction log's flush). The values must then be what
        the driver takes for each column's type (``str``, ``int``, ``float``, ``bool``,
        ``None``), which is what the dictionary path would have bound anyway.
        """
        if not rows and replace_where is None:
            return 0
        try:
            with self._connect(write=True) as conn:
                raw = conn.connection.driver_connection
                if timeout is not None and self.dialect == "sqlite" and raw is not None:
                    # On the driver's connection: SQLAlchemy would open a transaction for it.
                    raw.execute(f"PRAGMA busy_timeout={max(1, int(timeout * 1000))}")
                try:
                    with conn.begin():
                        if timeout is not None and self.dialect == "postgresql":
                            ms = max(1, int(timeout * 1000))
                            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {ms}")
                            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")
                        if replace_where is not None:
                            conn.execute(delete(table).where(replace_where))
                        if rows and columns is not None:
                            sql = self._insert_sql(table, tuple(columns))
                            conn.exec_driver_sql(sql, [tuple(r) for r in rows])
                        elif rows:
                            conn.execute(insert(table), cast(list[dict[str, Any]], list(rows)))
                finally:
                    if timeout is not None and self.dialect == "sqlite" and raw is not None:
                        raw.execute("PRAGMA busy_timeout=60000")
        except (OperationalError, DBAPIError) as exc:
            if isinstance(exc, SAIntegrityError):
                raise Conflict(
                    f"rows for {table.name} clash with what is stored ({exc.orig})"
                ) from exc
            raise NotReady(
                f"cannot write to {table.name} in {redact_db_url(self.url)}: {exc.orig}"
            ) from exc
        return len(rows)

    def _insert_sql(self, table: Table, columns: tuple[str, ...]) -> str:
        """``INSERT INTO table (columns) VALUES (...)`` in the driver's own placeholders."""
        key = (table.name, columns)
        sql = self._insert_cache.get(key)
        if sql is None:
            unknown = [c for c in columns if c not in table.c]
            if unknown or not columns:
                raise InvalidInput(
                    f"not columns of {table.name}: {unknown or 'none given'}", field="columns"
                )
            dialect = self.engine.dialect
            quote = dialect.identifier_preparer.quote
            # sqlite3 takes qmark; psycopg takes %s with a tuple whatever SQLAlchemy's style.
            mark = "?" if dialect.paramstyle == "qmark" else "%s"
            sql = (
                f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
                f"({', '.join(quote(c) for c in columns)}) "
                f"VALUES ({', '.join([mark] * len(columns))})"
            )
            self._insert_cache[key] = sql
        return sql

    @contextmanager
    def _connect(self, *, write: bool = False) -> Iterator[Connection]:
        try:
            conn = self.engine.connect()
        except OperationalError as exc:
            raise NotReady(
                f"cannot open the database {redact_db_url(self.url)}: {exc.orig}"
            ) from exc
        with conn:
            if write:
                conn.execution_options(modelcycle_write=True)
            yield conn


def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(url)
        _ping_after_idle(engine)
        return engine
    if parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take over transaction control from the sqlite3 module so BEGIN is ours to choose.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("modelcycle_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


# A pooled connection idle this long is pinged before use; one used more recently is not.
_PING_AFTER_IDLE_S = 1.0


def _ping_after_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only when it has sat idle.

    ``pool_pre_ping`` sends ``SELECT 1`` on every checkout: a whole round trip per request (9%
    of an API list request's samples under load). A connection checked in less than a second
    ago was working then; one that sat longer may have been cut by a database restart or an
    idle timeout, so it is pinged, and a failed ping makes the pool replace it (it retries up
    to three times). A restart within that second costs at most one failed statement, after
    which SQLAlchemy invalidates the whole pool.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < _PING_AFTER_IDLE_S:
            return
        try:
            # The dialect's own ping (what pool_pre_ping calls): it leaves no transaction open.
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError(str(exc)) from exc
        if not alive:
            raise DisconnectionError("the database did not answer a ping")

"""Each node's database and its unit of work: state, outbox and handled ids in one transaction.

A node's own tables live on its own ``MetaData``; ``Database`` adds the three shared
tables every node needs:

- ``processed_messages``: every msgid handled, with the SHA-256 of its bytes, so a
  redelivery is recognised (and a reused id with another payload refused);
- ``outbox``: every message a handler caused, relayed to the bus after the commit (a row a
  receiver refused for its bytes or its interface is sent again, or held back while the
  fault that breaks it lasts);
- ``rejections``: every refusal, with its code, node, field and sentence;
- ``awaited`` and ``set_aside``: per sender and claim, the message this node refused
  unconsumed and waits to receive again, repaired, and the later messages of that claim
  from that sender it keeps until then (so a resend never lets a later one overtake it).

SQLite file by default, PostgreSQL by URL (``postgresql+psycopg://``).

The node loop runs a few of these statements for every message, so those few are plain
SQL on the driver's cursor (``Driver``), and the rows a batch adds to ``processed_messages``
and ``outbox`` are written together when its transaction commits; everything else goes
through SQLAlchemy Core.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import (JSON, Column, DateTime, Integer, LargeBinary, MetaData, String, Table,
                        Text, bindparam, create_engine, delete, event, insert, select, text,
                        update)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from clearsim.errors import ClearsimError, ErrorCode, Rejection

core = MetaData()

processed_messages = Table(
    "processed_messages", core,
    Column("msgid", String(128), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("payload_sha256", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

outbox = Table(
    "outbox", core,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("msgid", String(128), nullable=False, unique=True),
    Column("caused_by", String(128), nullable=True, index=True),
    Column("kind", String(64), nullable=False),
    Column("correlation_id", String(128), nullable=False, index=True),
    Column("topic", String(255), nullable=False),
    Column("key", LargeBinary, nullable=True),
    Column("value", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True, index=True),
    Column("resent", Integer, nullable=False, default=0),     # sent again after a refusal
    Column("held_by", String(128), nullable=True),            # the fault it waits out
)

rejections = Table(
    "rejections", core,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("msgid", String(128), nullable=True, index=True),
    Column("kind", String(64), nullable=True),
    Column("code", String(64), nullable=False),
    Column("node", String(64), nullable=False),
    Column("field", String(255), nullable=True),
    Column("message", Text, nullable=False),
    Column("correlation_id", String(128), nullable=True, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
)


awaited = Table(
    "awaited", core,
    Column("sender", String(64), primary_key=True),
    Column("correlation_id", String(128), primary_key=True),
    Column("msgid", String(128), nullable=False),      # the message refused unconsumed
    Column("answer", String(128), nullable=True),      # our MessageRejected about it
)


set_aside = Table(
    "set_aside", core,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sender", String(64), nullable=False),
    Column("correlation_id", String(128), nullable=False),
    Column("topic", String(255), nullable=False),
    Column("key", LargeBinary, nullable=True),
    Column("value", LargeBinary, nullable=False),
    Column("headers", JSON, nullable=False),           # [[name, text], ...]
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@dataclass(frozen=True)
class OutboxRow:
    id: int | None            # None: a row just written, relayed without being read back
    msgid: str
    kind: str
    correlation_id: str
    topic: str
    key: bytes | None
    value: bytes
    caused_by: str | None
    created_at: datetime
    sent_at: datetime | None
    resent: int = 0
    held_by: str | None = None


def _row(r) -> OutboxRow:
    return OutboxRow(r.id, r.msgid, r.kind, r.correlation_id, r.topic, r.key, r.value,
                     r.caused_by, r.created_at, r.sent_at, r.resent, r.held_by)


# -- the node loop's own statements, on the driver ------------------------------------

# Written once with ``?`` placeholders (``Driver`` gives them the driver's own); ``{marks}``
# is a list of as many placeholders as there are ids.
SEEN = "SELECT msgid, payload_sha256, kind FROM processed_messages WHERE msgid IN ({marks})"
INSERT_PROCESSED = ("INSERT INTO processed_messages (msgid, kind, payload_sha256, outcome,"
                    " received_at) VALUES (?, ?, ?, ?, ?)")
INSERT_OUTBOX = ("INSERT INTO outbox (msgid, caused_by, kind, correlation_id, topic, key,"
                 " value, created_at, resent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)")
MARK_SENT = "UPDATE outbox SET sent_at = ? WHERE msgid IN ({marks})"
ANY_AWAITED = "SELECT 1 FROM awaited LIMIT 1"
# At most this many ids in one IN list (SQLite's oldest limit on parameters is 999).
IN_CHUNK = 500

# The node loop's other reads of its own tables: built once, compiled once per dialect.
PENDING = (select(outbox).where(outbox.c.sent_at.is_(None)).order_by(outbox.c.id)
           .limit(bindparam("limit", type_=Integer)))
HELD = select(outbox).where(outbox.c.held_by.is_not(None)).order_by(outbox.c.id)
OUTBOX_ROW = select(outbox).where(outbox.c.msgid == bindparam("msgid"))
CAUSED_BY = (select(outbox).where(outbox.c.caused_by == bindparam("msgid"))
             .order_by(outbox.c.id))
AWAITED = select(awaited).where(awaited.c.sender == bindparam("sender"),
                                awaited.c.correlation_id == bindparam("correlation_id"))


@functools.lru_cache(maxsize=256)
def _native(sql: str, paramstyle: str) -> str:
    return sql if paramstyle == "qmark" else sql.replace("?", "%s")


@functools.lru_cache(maxsize=None)
def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _chunks(items: list, size: int = IN_CHUNK) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class Driver:
    """Plain SQL on the DBAPI cursor of a SQLAlchemy connection, inside its transaction.

    For the statements the node loop runs once or more per message: no SQLAlchemy
    statement is built, compiled or cached per call (a few microseconds a statement
    instead of a hundred or more). The driver's errors come out as SQLAlchemy's
    (``OperationalError``, ``IntegrityError``...), as they would from ``conn.execute``, so
    the node loop tells an unavailable database from a bad message as before. ``stamp``
    gives a time as a ``DateTime(timezone=True)`` column stores it on this dialect (a
    string on SQLite, as SQLAlchemy writes it)."""

    def __init__(self, conn: Connection):
        self.dialect: Dialect = conn.dialect
        self._cursor = conn.connection.dbapi_connection.cursor()
        self._error = self.dialect.loaded_dbapi.Error
        self._to_column = _stamp_processor(self.dialect)

    def stamp(self, moment: datetime | None = None):
        """``moment`` (default: now) as this dialect's timestamp column takes it."""
        moment = moment or utcnow()
        return moment if self._to_column is None else self._to_column(moment)

    def execute(self, sql: str, params: tuple | list = ()):
        sql = _native(sql, self.dialect.paramstyle)
        try:
            self._cursor.execute(sql, params)
        except self._error as exc:
            raise self._wrapped(sql, params, exc) from exc
        return self._cursor

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        sql = _native(sql, self.dialect.paramstyle)
        try:
            self._cursor.executemany(sql, rows)
        except self._error as exc:
            raise self._wrapped(sql, rows, exc) from exc

    def _wrapped(self, sql, params, exc):
        return DBAPIError.instance(sql, params, exc, self._error, dialect=self.dialect)


@functools.lru_cache(maxsize=None)
def _stamp_processor(dialect: Dialect):
    return DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)


class Database:
    """A node's database. A SQLite URL may end in ``?cache_kib=N``: the page cache each
    connection keeps (SQLite's own default is about 2 MiB; a run of hundreds of nodes in one
    process gives each less). A pooled SQLite connection is reused last-in first-out, so a
    node's statements find one warm cache rather than several half-warm ones."""

    def __init__(self, url: str, metadata: MetaData):
        url, cache_kib = _cache_option(url)
        self.url = url
        self.metadata = metadata
        kwargs: dict = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
            kwargs["pool_use_lifo"] = True
        else:
            kwargs.update(pool_pre_ping=True, pool_size=2, max_overflow=2)
        self.engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", functools.partial(_sqlite_connect,
                                                                   cache_kib=cache_kib))
            event.listen(self.engine, "begin", _sqlite_begin)

    def create_all(self) -> None:
        try:
            core.create_all(self.engine)
            self.metadata.create_all(self.engine)
        except OperationalError as exc:
            raise ClearsimError(ErrorCode.DATABASE_UNAVAILABLE,
                                f"cannot reach database {safe_url(self.url)}: {exc.orig}",
                                "database") from None

    def unit_of_work(self) -> "UnitOfWork":
        return UnitOfWork(self)

    # -- outbox relay -------------------------------------------------------------

    def pending_outbox(self, limit: int = 500) -> list[OutboxRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(PENDING, {"limit": limit}).all()
        return [_row(r) for r in rows]

    def mark_sent(self, msgids: Iterable[str]) -> None:
        """The rows of these msgids went to the bus (acknowledged)."""
        msgids = list(msgids)
        if msgids:
            with self.engine.begin() as conn:
                driver = Driver(conn)
                stamp = driver.stamp()
                for chunk in _chunks(msgids):
                    driver.execute(MARK_SENT.format(marks=_marks(len(chunk))), [stamp, *chunk])

    def requeue(self, ids: list[int]) -> None:
        """Send these rows again (the answers owed to a redelivered message)."""
        if ids:
            with self.engine.begin() as conn:
                conn.execute(update(outbox).where(outbox.c.id.in_(ids)).values(sent_at=None))

    def held_outbox(self) -> list[OutboxRow]:
        """Rows held back while a fault lasts (see ``UnitOfWork.hold``)."""
        with self.engine.connect() as conn:
            rows = conn.execute(HELD).all()
        return [_row(r) for r in rows]

    def release(self, ids: list[int]) -> None:
        """Send held rows again, with a fresh count of resends."""
        if ids:
            with self.engine.begin() as conn:
                conn.execute(update(outbox).where(outbox.c.id.in_(ids))
                             .values(held_by=None, resent=0, sent_at=None))

    def dispose(self) -> None:
        self.engine.dispose()


# pysqlite opens a transaction only before INSERT/UPDATE/DELETE, so a SAVEPOINT can be the
# first statement and become the outermost one, whose RELEASE commits everything so far. The
# driver is therefore told to leave transactions alone and SQLAlchemy emits BEGIN itself (the
# recipe of SQLAlchemy's SQLite dialect page, "Serializable isolation / Savepoints").
def _sqlite_connect(dbapi_connection, _record, cache_kib: int | None = None) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    if cache_kib is not None:
        cursor.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
    cursor.close()


def _cache_option(url: str) -> tuple[str, int | None]:
    """A SQLite URL without its ``cache_kib`` option, and the option's value."""
    if not url.startswith("sqlite") or "cache_kib=" not in url:
        return url, None
    base, _, query = url.partition("?")
    kept, cache = [], None
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == "cache_kib":
            if not value.isdigit() or int(value) < 1:
                raise ClearsimError(ErrorCode.INVALID_INPUT,
                                    f"cache_kib={value!r} in the database URL must be a "
                                    "whole number of KiB, at least 1", "database")
            cache = int(value)
        elif part:
            kept.append(part)
    return base + ("?" + "&".join(kept) if kept else ""), cache


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN")


_UNKNOWN = object()


class UnitOfWork:
    """One transaction: ``with db.unit_of_work() as uow: ...; uow.commit()``.
    Leaving the block without ``commit`` (or by an exception) rolls everything back.

    The rows the node loop adds to ``processed_messages`` and ``outbox`` are kept here and
    written together (one ``executemany`` each) by ``flush``: at ``commit``, and before
    this unit of work reads either table back. Code that reads them through ``conn`` in
    the same transaction calls ``flush`` first. After ``commit``, ``written`` holds the
    outbox rows this transaction added (relayed without being read back), and
    ``outbox_changed`` says whether it changed rows it did not add (``resend``, ``hold``):
    the outbox is then to be read back before the next relay."""

    def __init__(self, db: Database):
        self.db = db
        self.conn: Connection | None = None
        self._tx = None
        self._driver: Driver | None = None
        self._outbox: list[OutboxRow] = []        # staged, in order; the first n flushed
        self._outbox_flushed = 0
        self._processed: list[tuple] = []         # (msgid, kind, sha256, outcome, stamp)
        self._processed_flushed = 0
        self._seen: dict[str, tuple[str, str] | None] = {}   # msgid -> (sha256, kind)
        self._awaiting: bool | None = None        # does this node await any message?
        self.written: list[OutboxRow] = []
        self.outbox_changed = False

    def __enter__(self) -> "UnitOfWork":
        try:
            self.conn = self.db.engine.connect()
            self._tx = self.conn.begin()
        except OperationalError as exc:
            raise ClearsimError(ErrorCode.DATABASE_UNAVAILABLE,
                                f"cannot reach database {safe_url(self.db.url)}: {exc.orig}",
                                "database") from None
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self._tx is not None and self._tx.is_active:
                self._tx.rollback()
        finally:
            self.conn.close()

    @property
    def driver(self) -> Driver:
        if self._driver is None:
            self._driver = Driver(self.conn)
        return self._driver

    def commit(self) -> None:
        """Write what is staged and commit. Two transactions racing on one msgid: the
        loser's insert fails with an IntegrityError; the node loop then handles that
        record alone and finds it a duplicate."""
        self.flush()
        self._tx.commit()
        self.written = self._outbox

    def flush(self) -> None:
        """Write the staged ``outbox`` and ``processed_messages`` rows."""
        if self._outbox_flushed < len(self._outbox):
            stamp = self.driver.stamp
            self.driver.executemany(INSERT_OUTBOX, [
                (r.msgid, r.caused_by, r.kind, r.correlation_id, r.topic, r.key, r.value,
                 stamp(r.created_at)) for r in self._outbox[self._outbox_flushed:]])
            self._outbox_flushed = len(self._outbox)
        if self._processed_flushed < len(self._processed):
            self.driver.executemany(INSERT_PROCESSED, self._processed[self._processed_flushed:])
            self._processed_flushed = len(self._processed)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """One message's writes inside the batch transaction: released when the block ends,
        undone alone when it raises (the exception goes on; the batch keeps the rest),
        the rows staged within it included."""
        staged = (len(self._outbox), self._outbox_flushed,
                  len(self._processed), self._processed_flushed)
        self.driver.execute("SAVEPOINT message")
        try:
            yield
        except BaseException:
            self._undo(*staged)
            raise
        self.driver.execute("RELEASE SAVEPOINT message")

    def _undo(self, outbox_len: int, outbox_flushed: int, processed_len: int,
              processed_flushed: int) -> None:
        try:
            self.driver.execute("ROLLBACK TO SAVEPOINT message")
            self.driver.execute("RELEASE SAVEPOINT message")
        except DBAPIError:
            pass    # the connection is lost: the whole transaction is, and the error goes on
        for row in self._processed[processed_len:]:
            self._seen.pop(row[0], None)
        del self._outbox[outbox_len:], self._processed[processed_len:]
        # What was flushed inside the savepoint is undone in the database: write it again.
        self._outbox_flushed = min(self._outbox_flushed, outbox_flushed)
        self._processed_flushed = min(self._processed_flushed, processed_flushed)

    # -- handled message ids ------------------------------------------------------

    def look_up(self, msgids: Iterable[str]) -> None:
        """Learn in one query which of ``msgids`` were handled (a batch's, before it is
        handled): ``check_message`` then asks the database only of the others."""
        wanted = list(dict.fromkeys(m for m in msgids if m and m not in self._seen))
        for chunk in _chunks(wanted):
            self._seen.update(dict.fromkeys(chunk))
            for msgid, sha, kind in self.driver.execute(
                    SEEN.format(marks=_marks(len(chunk))), chunk).fetchall():
                self._seen[msgid] = (sha, kind)

    def check_message(self, msgid: str, kind: str, payload: bytes) -> str:
        """"new", or "duplicate" for the same id and bytes; a reused id with other bytes
        is refused with DUPLICATE_ID_MODIFIED."""
        seen = self._seen.get(msgid, _UNKNOWN)
        if seen is _UNKNOWN:
            self.look_up([msgid])
            seen = self._seen[msgid]
        if seen is None:
            return "new"
        if seen[0] == sha256(payload):
            return "duplicate"
        raise ClearsimError(ErrorCode.DUPLICATE_ID_MODIFIED,
                            f"message id {msgid!r} was already used for a different {seen[1]} "
                            "payload; a message id must never be reused", "msgid")

    def mark_processed(self, msgid: str, kind: str, payload: bytes,
                       outcome: str = "handled") -> None:
        digest = sha256(payload)
        self._processed.append((msgid, kind, digest, outcome, self.driver.stamp()))
        self._seen[msgid] = (digest, kind)

    # -- outbox and rejections ----------------------------------------------------

    def add_outbox(self, *, msgid: str, kind: str, correlation_id: str, topic: str,
                   key: bytes | None, value: bytes, caused_by: str | None) -> None:
        self._outbox.append(OutboxRow(None, msgid, kind, correlation_id, topic, key, value,
                                      caused_by, utcnow(), None))

    def outbox_row(self, msgid: str) -> OutboxRow | None:
        self.flush()
        row = self.conn.execute(OUTBOX_ROW, {"msgid": msgid}).first()
        return None if row is None else _row(row)

    def resend(self, row_id: int) -> None:
        """Send an outbox row again, the same msgid and bytes (its receiver refused it
        without consuming it), and count it."""
        self.conn.execute(update(outbox).where(outbox.c.id == row_id)
                          .values(sent_at=None, resent=outbox.c.resent + 1))
        self.outbox_changed = True

    def hold(self, row_id: int, fault: str) -> None:
        """Keep an outbox row back until ``fault`` is over (``Database.release``)."""
        self.conn.execute(update(outbox).where(outbox.c.id == row_id).values(held_by=fault))
        self.outbox_changed = True

    def outbox_caused_by(self, msgid: str) -> list[OutboxRow]:
        self.flush()
        rows = self.conn.execute(CAUSED_BY, {"msgid": msgid}).all()
        return [_row(r) for r in rows]

    # -- messages refused unconsumed, awaited again ---------------------------------

    def awaited(self, sender: str, correlation_id: str):
        """The message of ``correlation_id`` from ``sender`` this node waits for, or None.
        Whether it waits for any at all is asked once per transaction."""
        if self._awaiting is None:
            self._awaiting = self.driver.execute(ANY_AWAITED).fetchone() is not None
        if not self._awaiting:
            return None
        return self.conn.execute(AWAITED, {"sender": sender, "correlation_id": correlation_id}
                                 ).mappings().first()

    def await_again(self, sender: str, correlation_id: str, msgid: str,
                    answer: str | None) -> None:
        """Wait for ``msgid`` (refused, answered with ``answer``) before taking anything
        later of that claim from that sender; while an earlier message is awaited, that
        one stays the one awaited."""
        held = self.awaited(sender, correlation_id)
        if held is None or held["msgid"] == msgid:
            upsert(self.conn, awaited, {"sender": sender, "correlation_id": correlation_id,
                                        "msgid": msgid, "answer": answer})
            self._awaiting = True

    def stop_awaiting(self, sender: str, correlation_id: str) -> list[dict]:
        """The wait is over: what was set aside meanwhile, in arrival order (taken out)."""
        where = (awaited.c.sender == sender, awaited.c.correlation_id == correlation_id)
        self.conn.execute(delete(awaited).where(*where))
        where = (set_aside.c.sender == sender, set_aside.c.correlation_id == correlation_id)
        kept = [dict(r) for r in self.conn.execute(
            select(set_aside).where(*where).order_by(set_aside.c.id)).mappings()]
        self.conn.execute(delete(set_aside).where(*where))
        return kept

    def set_aside(self, sender: str, correlation_id: str, *, topic: str, key: bytes | None,
                  value: bytes, headers: list[list[str]]) -> None:
        """Keep a message until the one awaited before it has come."""
        self.conn.execute(insert(set_aside).values(
            sender=sender, correlation_id=correlation_id, topic=topic, key=key, value=value,
            headers=headers))

    def add_rejection(self, rejection: Rejection, *, msgid: str | None, kind: str | None,
                      correlation_id: str | None) -> None:
        self.conn.execute(insert(rejections).values(
            msgid=msgid, kind=kind, code=rejection.code.value, node=rejection.node or "",
            field=rejection.field, message=rejection.message, correlation_id=correlation_id,
            at=utcnow()))


# -- small helpers the nodes' repositories share ------------------------------------
#
# Building a Core statement (``select(t).where(...)``) costs several times what running it
# does, so every statement here is built once, with ``bindparam`` placeholders, and kept;
# the values travel as parameters. An INSERT or UPDATE whose columns come from the
# parameters is compiled once per set of column names (SQLAlchemy's compiled cache). The
# ``INSERT ... ON CONFLICT`` forms are the dialect's own, so they are kept per dialect.

from sqlalchemy import bindparam  # noqa: E402  (kept with the helpers that use it)

_statements: dict[tuple, object] = {}


def prebuilt(key: tuple, build):
    """The statement kept under ``key`` (built by ``build()`` the first time): for a
    node's own hot statements, e.g. ``prebuilt((my_table, "by_day"), lambda: select(...)
    .where(my_table.c.day == bindparam("day")))``."""
    found = _statements.get(key)
    if found is None:
        found = _statements.setdefault(key, build())
    return found


def dialect_insert(conn):
    """The dialect's ``insert`` (with ``on_conflict_do_update`` / ``_do_nothing``)."""
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


def get_row(conn, table: Table, key_col, key):
    """The row of ``table`` whose ``key_col`` is ``key`` (a mapping), or None."""
    statement = prebuilt(("get", table, key_col.key),
                         lambda: select(table).where(key_col == bindparam("_key")))
    return conn.execute(statement, {"_key": key}).mappings().first()


def insert_row(conn, table: Table, values: dict) -> None:
    """Insert one row (its columns are the keys of ``values``; defaults fill the rest)."""
    conn.execute(prebuilt(("insert", table), lambda: insert(table)), values)


def insert_new(conn, table: Table, values: dict) -> bool:
    """Insert one row unless its key (or another unique column) is taken: whether it was
    inserted. One statement where a look-up and an insert would be two."""
    # (an INSERT's rowcount is kept only when asked for: psycopg's cursor is closed by then)
    statement = prebuilt(("insert_new", conn.dialect.name, table), lambda: dialect_insert(
        conn)(table).on_conflict_do_nothing().execution_options(preserve_rowcount=True))
    return conn.execute(statement, values).rowcount == 1


def update_row(conn, table: Table, key_col, key, values: dict) -> None:
    """Set ``values`` (column name -> value) on the row whose ``key_col`` is ``key``."""
    statement = prebuilt(("update", table, key_col.key),
                         lambda: update(table).where(key_col == bindparam("_key")))
    conn.execute(statement, {**values, "_key": key})


def update_rows(conn, table: Table, key_col, keys, values: dict) -> None:
    """Set ``values`` on every row whose ``key_col`` is among ``keys`` (none: nothing)."""
    keys = list(keys)
    if not keys:
        return
    statement = prebuilt(("update_in", table, key_col.key), lambda: update(table).where(
        key_col.in_(bindparam("_keys", expanding=True))))
    conn.execute(statement, {**values, "_keys": keys})


def upsert(conn, table: Table, values: dict, keys: tuple[str, ...] | None = None) -> None:
    """Insert a row, or update the given columns of the row whose key is taken, in one
    statement (``INSERT ... ON CONFLICT DO UPDATE``, on SQLite and PostgreSQL alike).
    ``keys`` default to the table's primary key and must be among ``values``."""
    conn.execute(_upsert(conn, table, tuple(sorted(values)), keys), values)


def upsert_many(conn, table: Table, rows: list[dict],
                keys: tuple[str, ...] | None = None) -> None:
    """``upsert`` of each row (all with the same columns), in one executemany."""
    if rows:
        conn.execute(_upsert(conn, table, tuple(sorted(rows[0])), keys), rows)


def _upsert(conn, table: Table, names: tuple[str, ...], keys: tuple[str, ...] | None):
    keys = keys or tuple(c.name for c in table.primary_key.columns)

    def build():
        statement = dialect_insert(conn)(table)
        changes = {name: statement.excluded[name] for name in names if name not in keys}
        if changes:
            return statement.on_conflict_do_update(index_elements=list(keys), set_=changes)
        return statement.on_conflict_do_nothing(index_elements=list(keys))
    return prebuilt(("upsert", conn.dialect.name, table, names, keys), build)


def _latest(conn, correlation_id: str, kind: str):
    statement = prebuilt(("latest", outbox), lambda: select(outbox.c.id, outbox.c.msgid).where(
        outbox.c.correlation_id == bindparam("correlation_id"),
        outbox.c.kind == bindparam("kind")).order_by(outbox.c.id.desc()).limit(1))
    return conn.execute(statement, {"correlation_id": correlation_id, "kind": kind}).first()


def latest_msgid(conn, correlation_id: str, kind: str) -> str | None:
    """The msgid of the latest ``kind`` message this node sent in conversation
    ``correlation_id`` (None: it sent none)."""
    row = _latest(conn, correlation_id, kind)
    return None if row is None else row.msgid


def resend(conn, correlation_id: str, kind: str) -> str | None:
    """Send the latest ``kind`` message of conversation ``correlation_id`` again, as it is
    (same bytes, same msgid: the receiver absorbs it if it had it): a retry. Its msgid, or
    None when this node never sent one."""
    row = _latest(conn, correlation_id, kind)
    if row is None:
        return None
    update_row(conn, outbox, outbox.c.id, row.id, {"sent_at": None})
    return row.msgid


def has_rejection(conn, correlation_id: str) -> bool:
    """Whether this node refused a message of the conversation ``correlation_id``."""
    statement = prebuilt(("has_rejection", rejections), lambda: select(rejections.c.id).where(
        rejections.c.correlation_id == bindparam("correlation_id")).limit(1))
    return conn.execute(statement, {"correlation_id": correlation_id}).first() is not None


# -- what a node sent, handled and refused (the run's delivery check reads these) ---------

def sent_messages(conn) -> list:
    """Every outbox row, in the order it was written: id, msgid, kind, correlation_id,
    topic, caused_by, sent_at (None: not sent yet)."""
    return conn.execute(select(outbox.c.id, outbox.c.msgid, outbox.c.kind,
                               outbox.c.correlation_id, outbox.c.topic, outbox.c.caused_by,
                               outbox.c.sent_at).order_by(outbox.c.id)).all()


def handled_messages(conn) -> dict[str, tuple[str, datetime]]:
    """msgid -> (outcome, when it was handled) of every message this node took."""
    rows = conn.execute(select(processed_messages.c.msgid, processed_messages.c.outcome,
                               processed_messages.c.received_at)).all()
    return {r.msgid: (r.outcome, r.received_at) for r in rows}


def refused_msgids(conn) -> set[str]:
    """The ids of the messages this node refused with a code."""
    rows = conn.execute(select(rejections.c.msgid).where(rejections.c.msgid.is_not(None)))
    return {r.msgid for r in rows}


def ensure_database(server_url: str, name: str) -> str:
    """Create database ``name`` on the PostgreSQL server at ``server_url`` if it does not
    exist; return its URL. One database per node keeps nodes as separate as processes."""
    url = make_url(server_url)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                  {"n": name}).first()
            if exists is None:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        raise ClearsimError(ErrorCode.DATABASE_UNAVAILABLE,
                            f"cannot reach PostgreSQL at {safe_url(server_url)}: {exc.orig}",
                            "postgres") from None
    finally:
        admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)

"""The node loop: receive → decode → dispatch to a handler → commit. No business logic here.

Delivery guarantees (DOMAIN.md "nothing lost, nothing doubled"):
- One database transaction per polled batch holds the state changes, the outbox rows of
  every message caused and the ids of the messages handled; the bus offsets are committed
  only after it. A crash anywhere means redelivery, never loss.
- A redelivered message is recognised by its msgid and has no second effect; the answers it
  caused the first time are sent again (a reply may have been lost with the crash).
- The outbox is relayed after the commit; a crash between send and ``mark_sent`` sends a
  row twice, and the receiver's msgid check absorbs it. What a transaction wrote is relayed
  from memory; the outbox is read back only when rows this process did not just write may
  be due (at start, after a resend, a release, a requeue, a timer or a failed relay).
- Anything refused (undecodable, unknown schema, duplicate id with a different payload, a
  handler's ClearsimError, a handler bug) is recorded with a stable code and answered with
  ``MessageRejected`` to its sender when the sender is known; the node keeps consuming.
- A refusal of a message's bytes or interface (``INTERFACE_CODES``: malformed, unknown or
  incompatible schema, wrong ``infno``, a required field empty) does not consume its msgid:
  its sender sends the same outbox row again, a bounded number of times (a corruption on
  the way heals); then it holds the row (a ``schema`` fault with ``fallback = "hold"``:
  until the fault is over; a link that kept corrupting it: for a pause;
  ``release_held`` sends it then) or lets its handlers fall back, as for any other
  refusal. Meanwhile the receiver keeps the later messages of that claim from that sender
  aside and handles them after the one it awaits, so a resend never reorders a claim.
- Each handler runs in its own savepoint inside the batch transaction: a handler that wrote
  and then refused leaves nothing behind but the refusal.
- Hostile input (clearsim/senders.py, README "Poison and hostile input"): every refusal is
  also parked on the dead-letter topic (``{prefix}.dlq``, keyed by this node): the reason,
  the original bytes and headers, staged in the outbox in the same transaction as the
  refusal, so a refusal is never recorded without its dead letter nor parked twice. Before
  a handler runs, the sender is checked against who may send that kind here (``Senders``);
  a message its sender may not send (``SENDER_NOT_AUTHORIZED``) is refused unanswered. A
  message handled before that comes again long after (``REPLAY_AFTER`` of simulated time
  behind the newest of its kind from its sender on its partition) is a replay, not a
  redelivery: refused as ``MESSAGE_REPLAYED``, unanswered, its answers not sent again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError

from clearsim import wire
from clearsim.bus.base import Bus, BusError, Record
from clearsim.bus.topics import dlq_topic, is_table, policies_topic
from clearsim.codec import HEADER_TEXT, Codec
from clearsim.db import Database, OutboxRow
from clearsim.errors import (INTERFACE_CODES, UNANSWERED_CODES, ClearsimError, ErrorCode,
                             Rejection)
from clearsim.faults import NO_FAULTS, Faults
from clearsim.messages import DEAD_LETTERS, SIM, Message, Outgoing, topic_for
from clearsim.metrics import NullSensor, Sensor
from clearsim.senders import Senders

log = logging.getLogger(__name__)

Handler = Callable[[Message, Any], list[Outgoing]]
TableHandler = Callable[[list[Message], Any], None]

# A message stamped further ahead of the receiver's own clock than this was sent by a node
# whose clock is wrong (one of the two): noticed as CLOCK_SKEW, never refused.
CLOCK_TOLERANCE = timedelta(seconds=5)
# How many times a row a receiver refused for its bytes or interface is sent again before
# the sender holds it or falls back.
RESENDS = 8
# Wall seconds between a node's own looks at what it holds back (only while faults are
# injected).
HOLD_RETRY = 1.0
# At most this many unsent outbox rows read back per relay (the rest on the next step).
RELAY_LIMIT = 500
# A message handled before that comes again this far (in simulated time) behind the newest
# message of its kind its sender had on that partition is a replay, not a redelivery. A
# redelivery comes in the order it was first sent (a partition keeps it), behind what was
# sent after it by no more than a retry or a fault window lasts (days); a month is beyond
# any of those, and beyond any timetable of the simulated calendar (clearing takes about
# five weeks from a month's end, but its messages each go once, in order).
REPLAY_AFTER = timedelta(days=30)
# What a dead letter keeps of the original record: enough to see and replay any message a
# node writes, little enough that the dead letter itself always fits a Kafka record.
PARKED_BYTES = 256 * 1024
PARKED_HEADERS = 64
PARKED_HEADER_BYTES = 1024

# Failures of the database or the bus, not of a message: the batch is retried, never set
# aside. Anything else that escapes a handler is the message's own problem.
def is_infrastructure(exc: Exception) -> bool:
    if isinstance(exc, ClearsimError):
        return exc.code in (ErrorCode.DATABASE_UNAVAILABLE, ErrorCode.BROKER_UNAVAILABLE)
    return isinstance(exc, (OperationalError, InterfaceError, BusError))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_msgid(node_id: str) -> str:
    return f"{node_id}-{os.urandom(10).hex()}"


class Node:
    """One node: its topic, its database, its handlers."""

    def __init__(self, *, node_id: str, db: Database, bus: Bus, codec: Codec,
                 handlers: Mapping[str, Handler], make_context: Callable[[Any], Any],
                 prefix: str, on_start: Callable[[Any], list[Outgoing]] | None = None,
                 sensor: Sensor | None = None, max_batch: int = 200,
                 faults: Faults = NO_FAULTS, clock: Callable[[], datetime] = utcnow,
                 on_idle: Callable[[Any], list[Outgoing]] | None = None,
                 idle_every: float = 0.05, resends: int = RESENDS,
                 tables: Mapping[str, TableHandler] | None = None,
                 senders: Senders | None = None):
        self.node_id = node_id
        self.db = db
        self.bus = bus
        self.codec = codec
        self.handlers = dict(handlers)
        self.make_context = make_context
        self.prefix = prefix
        self.on_start = on_start
        self.sensor = sensor or NullSensor()
        self.max_batch = max_batch
        self.faults = faults
        self.clock = clock
        self.on_idle = on_idle            # a timer: (context) -> messages, when idle
        self.idle_every = idle_every
        self.resends = resends
        self.senders = senders            # who may send what here (None: anyone anything)
        self._releasing = threading.Lock()
        self._next_release = 0.0
        self.topic = topic_for(node_id, prefix)
        # Table topics read beside its own (the policy table), and how each kind of their
        # records is applied: all of a batch's at once, as a table's latest values.
        self.tables = dict(tables or {})
        self.also_reads = (policies_topic(prefix),) if self.tables else ()
        self._translator = wire.translator(codec)
        self._consumer = None
        self._producer = None
        self._next_idle = 0.0
        self._written: list[OutboxRow] = []   # committed, not relayed yet
        self._stale = True    # rows this process did not just write may be due: read them
        self._unacknowledged: set[str] = set()   # conversations noticed unacknowledged
        self._skewed: set[tuple[str, str]] = set()   # (sender, conversation) noticed
        # (topic, partition, sender, kind) -> the newest simulated time handled: what a
        # message that comes again is measured against (a replay, or a redelivery)
        self._newest: dict[tuple[str, int, str, str], datetime] = {}

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> "Node":
        self.db.create_all()
        self.bus.ensure_topics([self.topic, *self.also_reads, dlq_topic(self.prefix)],
                               self.bus_partitions())
        self._producer = self.bus.producer()
        self._consumer = self.bus.consumer(group=self.topic,
                                           topics=[self.topic, *self.also_reads])
        self.sensor.on_node_start(self.node_id)
        if self.on_start is not None:
            with self.db.unit_of_work() as uow:
                outs = self.on_start(self.make_context(uow.conn))
                self._stage(uow, outs, cause=None)
                self._commit(uow, outbox_changed=True)
        self.relay()
        return self

    def assignment(self) -> list:
        """The partitions of its topics this node's consumer holds now."""
        return [] if self._consumer is None else self._consumer.assignment()

    def bus_partitions(self) -> int:
        return getattr(self.bus, "default_partitions", 3)

    def stop(self) -> None:
        """Leave without committing anything further: what was not committed is redelivered."""
        for part in (self._consumer, self._producer):
            if part is not None:
                try:
                    part.close()
                except Exception:  # closing is best effort; state is in the database
                    log.exception("%s: error while closing", self.node_id)
        self._consumer = self._producer = None

    def release_held(self) -> int:
        """Send again what was held back, now that no ``schema`` fault of this node on its
        kind is active; the count. The runner calls it at every change of simulated day,
        and the node's own loop every ``HOLD_RETRY`` seconds while faults are injected (a
        message a corrupting link kept breaking is tried again after that pause)."""
        with self._releasing:
            free = [row for row in self.db.held_outbox()
                    if not self.faults.holding(row.kind)]
            self.db.release([row.id for row in free])
            if free:
                self._stale = True
                self.sensor.on_retry(self.node_id, "released", len(free))
        for row in free:
            self.faults.repair_step(row.held_by, "released", row.correlation_id,
                            detail=f"{row.kind} {row.msgid} sent again")
        return len(free)

    # -- the loop -----------------------------------------------------------------

    def step(self, timeout: float = 0.05) -> int:
        """Poll one batch, handle it in one transaction, commit offsets, relay the outbox.
        The poll waits at most ``timeout`` seconds, never past the node's next timer (its
        ``on_idle``, its look at what it holds back) and not at all while rows may wait to
        be relayed; a bus wakes it when records arrive."""
        records = self._consumer.poll(timeout=self._wait(timeout), max_records=self.max_batch)
        if records:
            self.sensor.on_fetched(self.node_id, len(records))
            try:
                requeue = self._handle_batch(records)
            except Exception:
                # The database or the bus failed: nothing of this batch was committed, so
                # go back and take it again on the next step.
                self._consumer.rewind()
                self.sensor.on_batch_end(self.node_id, len(records), committed=False)
                raise
            self._consumer.commit()
            self.sensor.on_batch_end(self.node_id, len(records), committed=True)
            if requeue:
                self.db.requeue(requeue)
                self.sensor.on_retry(self.node_id, "redelivered", len(requeue))
                self._stale = True
        elif self.on_idle is not None and time.monotonic() >= self._next_idle:
            self.idle()
        if self.faults.plan and time.monotonic() >= self._next_release:
            self._next_release = time.monotonic() + HOLD_RETRY
            self.release_held()
        self.relay()
        return len(records)

    @property
    def relay_due(self) -> bool:
        """Whether outbox rows may be waiting to be relayed (the next step sends them)."""
        return self._stale or bool(self._written)

    def _wait(self, timeout: float) -> float:
        """How long the next poll may wait: ``timeout``, cut to the next timer due."""
        if self._stale:
            return 0.0
        due = timeout
        now = time.monotonic()
        if self.on_idle is not None:
            due = min(due, self._next_idle - now)
        if self.faults.plan:
            due = min(due, self._next_release - now)
        return max(due, 0.0)

    def idle(self) -> None:
        """Run the node's timer (``on_idle``, at most every ``idle_every`` seconds, when a
        poll brought nothing) in one transaction: what it changes and the messages it
        causes are committed together, like a handler's."""
        self._next_idle = time.monotonic() + self.idle_every
        with self.db.unit_of_work() as uow:
            outs = self.on_idle(self.make_context(uow.conn))
            self._stage(uow, outs, cause=None)
            self._commit(uow, outbox_changed=True)     # a timer may send rows again

    def _commit(self, uow, outbox_changed: bool = False) -> None:
        """Commit a unit of work; what it wrote to the outbox is relayed next."""
        uow.commit()
        self._written.extend(uow.written)
        if outbox_changed or uow.outbox_changed:
            self._stale = True

    def relay(self) -> int:
        """Send what was committed since the last relay (everything unsent, read back, when
        rows this process did not just write may be due), flush once, and mark sent what
        the bus acknowledged; what it did not stays unsent and goes again."""
        rows, self._written = self._written, []
        if self._stale:
            self._stale = False       # before reading: a release meanwhile sets it again
            rows = self.db.pending_outbox(RELAY_LIMIT)
            if len(rows) == RELAY_LIMIT:
                self._stale = True    # more after these
        if not rows:
            return 0
        try:
            self._send(rows)
        except Exception:
            self._stale = True        # whatever was not marked sent is still due
            raise
        return len(rows)

    def _send(self, rows: list[OutboxRow]) -> None:
        for row in rows:
            headers = record_headers(row.msgid, row.kind, self.node_id, row.correlation_id)
            self._producer.send(row.topic, row.key, row.value, headers)
            self.sensor.on_message_out(self.node_id, row.kind)
        try:
            self._producer.flush()
        except BusError as exc:
            # What was not acknowledged stays unsent and goes again on the next step.
            lost = [row for row in rows if exc.unacknowledged is None
                    or row.msgid in exc.unacknowledged]
            self.db.mark_sent([row.msgid for row in rows if row not in lost])
            self.sensor.on_retry(self.node_id, "unacknowledged", len(lost))
            claims = {row.correlation_id for row in lost}
            for claim in sorted(claims - self._unacknowledged):
                self.faults.noticed(ErrorCode.BROKER_UNAVAILABLE.value, claim, None,
                                    f"not acknowledged by the bus: {exc}")
            self._unacknowledged |= claims
            raise
        self._unacknowledged.clear()
        self.db.mark_sent([row.msgid for row in rows])

    def _handle_batch(self, records: list[Record]) -> list[int]:
        records = [_plain(rec) for rec in records]
        try:
            with self.db.unit_of_work() as uow:
                table = [rec for rec in records if is_table(rec.topic)]
                if table:
                    self._apply_tables(uow, table)
                    records = [rec for rec in records if not is_table(rec.topic)]
                uow.look_up(_header(rec, "msgid") for rec in records)
                requeue = [rid for rec in records for rid in self._process(uow, rec)]
                self._commit(uow)
                return requeue
        except Exception as exc:
            if is_infrastructure(exc):
                raise
            if len(records) == 1:
                return self._record_failure(records[0])
            log.exception("%s: batch failed; handling its %d records one by one",
                          self.node_id, len(records))
            return [rid for rec in records for rid in self._handle_batch([rec])]

    def _apply_tables(self, uow, records: list[Record]) -> None:
        """Records of a table topic: each region's latest value, not a conversation. They
        are applied together, before the batch's own messages (which may need them), with
        no message id recorded: applying a table's record again changes nothing. A record
        that cannot be read or applied, or that its sender may not write (only the hub
        distributes policies), goes the way of any message, and is refused."""
        by_kind: dict[str, list[Message]] = {}
        alone: list[Record] = []
        for rec in records:
            try:
                kind, data = self._read_table_record(rec.value)
                if kind not in self.tables or (
                        self.senders is not None
                        and self.senders.check(kind, data["header"]["sender"]) is not None):
                    alone.append(rec)
                    continue
                message = _table_message(self._translator, rec.value, kind, data)
            except ClearsimError:
                alone.append(rec)
                continue
            by_kind.setdefault(kind, []).append(message)
            self.sensor.on_message_in(self.node_id, kind)
        for kind, messages in by_kind.items():
            try:
                with uow.savepoint():
                    self.tables[kind](messages, self.make_context(uow.conn))
            except ClearsimError:
                alone.extend(rec for rec in records if _header(rec, "kind") == kind)
        for rec in alone:
            self._process(uow, rec)

    def _read_table_record(self, value: bytes) -> tuple[str, dict]:
        """A table record's bytes decoded and checked, once per process and codec: every
        region reads every region's policy, and in one process the same bytes would
        otherwise be decoded regions² times. The bytes are the key, so a record corrupted
        on one link is read as what it is. Read-only: the nodes share what it returns."""
        key = (self._translator, value)
        found = _TABLE_READS.get(key)
        if found is None:
            kind, data = self.codec.decode(value)
            self.codec.check(kind, data)
            found = _TABLE_READS[key] = [kind, data, None]
            _forget_oldest(_TABLE_READS)
        return found[0], found[1]

    def _process(self, uow, rec: Record) -> list[int]:
        started = time.perf_counter()
        try:
            kind, data = self.codec.decode(rec.value)
        except ClearsimError as exc:
            meta = _meta(rec)
            # Bytes that cannot be read say nothing trustworthy of themselves: a refusal
            # that consumes an id consumes the record's place on the bus, not the id its
            # headers claim (which may be another message's).
            msgid = meta["msgid"] if exc.code in INTERFACE_CODES else meta["place"]
            return self._refuse_early(uow, exc.rejection, rec, msgid=msgid,
                                      kind=meta["kind"], sender=meta["sender"],
                                      correlation_id=meta["correlation_id"], infno="",
                                      sim_time=None)
        header = data["header"]
        try:
            self.codec.check(kind, data)
            data.pop("header")
            body = self._translator.inbound(kind, data)   # English inside
        except ClearsimError as exc:
            # (a header field may be the one too long: each is taken only if it fits)
            meta = _meta(rec)
            sane = {name: _fits(name, header.get(name)) or meta[name]
                    for name in ("msgid", "sender", "correlation_id")}
            return self._refuse_early(uow, exc.rejection, rec, kind=kind,
                                      infno=_fits("infno", header["infno"]) or "",
                                      sim_time=header["sim_time"], **sane)
        msg = Message(kind, header, body)
        self.sensor.on_message_in(self.node_id, kind)
        self._check_clock(msg)
        kept = self._in_order(uow, msg, rec)
        if kept is None:
            return []
        return self._handle(uow, rec, msg, header, started) + [
            rid for record in kept for rid in self._process(uow, record)]

    def _handle(self, uow, rec: Record, msg: Message, header: dict,
                started: float) -> list[int]:
        kind = msg.kind
        about = dict(rec=rec, kind=kind, sender=msg.sender, correlation_id=msg.correlation_id,
                     infno=header.get("infno", ""), sim_time=msg.sim_time)
        try:
            status = uow.check_message(msg.msgid, kind, rec.value)
        except ClearsimError as exc:
            # The id is taken by another payload: refuse it, but do not record the id again.
            return self._refuse(uow, exc.rejection, msgid=None, refused_msgid=msg.msgid,
                                **about)
        if status == "duplicate":
            replay = self._replay(rec, msg)
            if replay is not None:
                return self._refuse(uow, replay, msgid=None, refused_msgid=msg.msgid, **about)
            self.sensor.on_duplicate(self.node_id, kind)
            self.faults.noticed("DUPLICATE", msg.correlation_id, _day(msg.sim_time),
                                f"{kind} {msg.msgid} again: absorbed")
            return [row.id for row in uow.outbox_caused_by(msg.msgid)]
        if self.senders is not None:
            rejection = self.senders.check(kind, msg.sender)
            if rejection is not None:
                return self._refuse(uow, rejection, msgid=msg.msgid, **about)
        if kind == "MessageRejected" and self._repair(uow, msg):
            uow.mark_processed(msg.msgid, kind, rec.value)
            self.sensor.on_handled(self.node_id, kind, time.perf_counter() - started)
            return []
        handler = self.handlers.get(kind)
        if handler is None:
            rejection = Rejection(ErrorCode.MESSAGE_TYPE_UNEXPECTED,
                                  f"{self.node_id} does not handle {kind} messages", "kind")
            return self._refuse(uow, rejection, msgid=msg.msgid, **about)
        try:
            with uow.savepoint():     # a refusal keeps none of the handler's writes
                outs = handler(msg, self.make_context(uow.conn))
        except ClearsimError as exc:
            return self._refuse(uow, exc.rejection, msgid=msg.msgid, **about)
        self._stage(uow, outs, cause=msg)
        uow.mark_processed(msg.msgid, kind, rec.value)
        self._note(rec, msg)
        self.sensor.on_handled(self.node_id, kind, time.perf_counter() - started)
        return []

    def _note(self, rec: Record, msg: Message) -> None:
        """Remember the newest simulated time handled of this kind from this sender on
        this partition (what a message that comes again is measured against)."""
        key = (rec.topic, rec.partition, msg.sender, msg.kind)
        newest = self._newest.get(key)
        if newest is None or msg.sim_time > newest:
            self._newest[key] = msg.sim_time

    def _replay(self, rec: Record, msg: Message) -> Rejection | None:
        """A message handled before, come again: a redelivery (None), or a replay when its
        simulated time is more than ``REPLAY_AFTER`` behind the newest message of its kind
        its sender had on this partition (see ``REPLAY_AFTER``). Measured only against what
        this process has handled since it started: after a restart, what comes first is the
        redelivery of what was not committed."""
        newest = self._newest.get((rec.topic, rec.partition, msg.sender, msg.kind))
        if newest is None or newest - msg.sim_time <= REPLAY_AFTER:
            return None
        days = (newest - msg.sim_time).days
        return Rejection(ErrorCode.MESSAGE_REPLAYED,
                         f"{msg.kind} {msg.msgid} of {msg.sim_time:%Y-%m-%d} was handled "
                         f"before and comes again {days} simulated days behind the newest "
                         f"{msg.kind} from {msg.sender} ({newest:%Y-%m-%d}): a replay, not a "
                         "redelivery; it has no effect and its answers are not sent again",
                         "msgid", self.node_id)

    def _check_clock(self, msg: Message) -> None:
        """A message sent "in the future" by this node's clock: one of the two clocks is
        wrong. Noticed once per sender and conversation; the message is handled as usual."""
        sent_at = msg.header.get("sent_at")
        ahead = sent_at - self.clock() if sent_at is not None else None
        if ahead is None or ahead <= CLOCK_TOLERANCE:
            return
        seen = (msg.sender, msg.correlation_id)
        if seen not in self._skewed:
            self._skewed.add(seen)
            self.faults.noticed(ErrorCode.CLOCK_SKEW.value, msg.correlation_id, None,
                                f"{msg.kind} from {msg.sender} sent {ahead.total_seconds():.0f}"
                                f" s ahead of {self.node_id}'s clock")

    # -- repairs ------------------------------------------------------------------

    def _in_order(self, uow, msg: Message, rec: Record) -> list[Record] | None:
        """None for a message set aside: this node refused an earlier one of the same claim
        from the same sender for its bytes or interface and waits for it again. Else the
        records to handle after this one: what was set aside, when this message ends the
        wait (it is the one awaited, or what its sender did on hearing of the refusal, its
        fallback). Refusals themselves are never set aside: two nodes each waiting for the
        other's resend would wait forever."""
        awaited = uow.awaited(msg.sender, msg.correlation_id)
        if awaited is None:
            return []
        refusal_of_our_answer = (msg.kind == "MessageRejected"
                                 and msg.body.get("refers_to_msgid") == awaited["answer"])
        if msg.msgid == awaited["msgid"] or (
                awaited["answer"] is not None and not refusal_of_our_answer
                and msg.header.get("causation_id") == awaited["answer"]):
            kept = uow.stop_awaiting(msg.sender, msg.correlation_id)
            return [Record(k["topic"], rec.partition, rec.offset, k["key"], k["value"],
                           tuple((name, text.encode()) for name, text in k["headers"]))
                    for k in kept]
        if msg.kind == "MessageRejected":
            return []     # refusals make senders send again: never set one aside
        uow.set_aside(msg.sender, msg.correlation_id, topic=rec.topic, key=rec.key,
                      value=rec.value, headers=[[name, value.decode("utf-8", "replace")]
                                                for name, value in rec.headers])
        self.faults.noticed("OUT_OF_ORDER", msg.correlation_id, _day(msg.sim_time),
                            f"{msg.kind} {msg.msgid} kept until {awaited['msgid']} comes "
                            "again")
        return None

    def _repair(self, uow, msg: Message) -> bool:
        """A receiver refused the bytes or the interface of a message this node sent: send
        the same row again, or hold it while the ``schema`` fault that breaks it lasts
        (True); False when the handlers are to hear of it (another refusal, or no resend
        left and no hold: the claim falls back)."""
        error = msg.body.get("error") or {}
        code = error.get("code")
        if code not in INTERFACE_CODES:
            return False
        row = uow.outbox_row(msg.body.get("refers_to_msgid") or "")
        if row is None:
            return False
        if row.held_by is not None:
            return True
        fault = self.faults.explain(row.kind, msg.sender, row.correlation_id)
        what = f"{row.kind} {row.msgid} to {msg.sender}"
        if row.resent < self.resends:
            uow.resend(row.id)
            self.sensor.on_retry(self.node_id, "refused")
            self.faults.repair_step(fault, "resent", row.correlation_id, code,
                            f"{what}: sending {row.resent + 2} of at most {self.resends + 1}")
            return True
        # Corrupted bytes are the link's doing, never the claim's: what they keep breaking
        # waits for the link to heal rather than send a patient home.
        if fault is not None and (fault.kind == "corrupt" or fault.get("fallback") == "hold"):
            uow.hold(row.id, fault.id)
            until = "a pause" if fault.kind == "corrupt" else "the fault is over"
            self.faults.repair_step(fault, "held", row.correlation_id, code,
                            f"{what}: held until {until}")
            return True
        self.faults.repair_step(fault, "fallback", row.correlation_id, code,
                        f"{what}: refused {row.resent + 1} times; manual")
        return False

    # -- refusals -----------------------------------------------------------------

    def _refuse_early(self, uow, rejection: Rejection, rec: Record, *, msgid: str,
                      **about) -> list[int]:
        """A refusal before the message id was looked up (the bytes, the interface, the
        size, an amount): one that consumes the id is made once; the message delivered
        again after it is absorbed like any duplicate, its answer sent again."""
        if rejection.code not in INTERFACE_CODES:
            try:
                status = uow.check_message(msgid, about["kind"] or "", rec.value)
            except ClearsimError as exc:      # the id is another payload's
                return self._refuse(uow, exc.rejection, rec=rec, msgid=None,
                                    refused_msgid=msgid, **about)
            if status == "duplicate":
                self.sensor.on_duplicate(self.node_id, about["kind"] or "")
                return [row.id for row in uow.outbox_caused_by(msgid)]
        return self._refuse(uow, rejection, rec=rec, msgid=msgid, **about)

    def _refuse(self, uow, rejection: Rejection, *, rec: Record, msgid: str | None,
                kind: str, sender: str | None, correlation_id: str | None, infno: str,
                sim_time: datetime | None, refused_msgid: str | None = None) -> list[int]:
        """Record a refusal, answer it to its sender (when it may be answered), park the
        message on the dead-letter topic, count it; all in ``uow``."""
        rejection = rejection.at(rejection.node or self.node_id)
        # A message refused for its bytes or interface is not consumed: the sender may send
        # the same msgid again, repaired.
        consumed = rejection.code not in INTERFACE_CODES
        self.sensor.on_rejected(self.node_id, rejection.code.value)
        self.faults.noticed(rejection.code.value, correlation_id or None, _day(sim_time),
                            f"{kind or 'message'} refused: {rejection.message}")
        log.warning("%s refused %s %s: %s", self.node_id, kind or "message",
                    msgid or refused_msgid, rejection)
        uow.add_rejection(rejection, msgid=msgid or refused_msgid, kind=kind or None,
                          correlation_id=correlation_id or None)
        if self._answerable(sender, rejection):
            answer = Outgoing("MessageRejected", sender, correlation_id or "", {
                "refers_to_msgid": msgid or refused_msgid or "",
                "original_transaction": infno, "original_kind": kind or "",
                "error": wire.error_out(rejection, self.node_id),
            }, sim_time=sim_time)
            # A refused duplicate id is not "caused" by the message that owns the id:
            # it must not be sent again when that message is redelivered. Nor is the
            # answer to a message refused unconsumed: its repaired resend is handled.
            [answer_id] = self._stage(uow, [answer], cause=None,
                                      causation_id=msgid or refused_msgid,
                                      owned=msgid is not None and consumed)
            if not consumed and msgid is not None:
                uow.await_again(sender, correlation_id or "", msgid, answer_id)
        self._park(uow, rejection, rec, msgid=msgid or refused_msgid, kind=kind,
                   sender=sender, infno=infno, sim_time=sim_time,
                   consumed=consumed and msgid is not None)
        if msgid is not None and consumed:
            uow.mark_processed(msgid, kind or "", rec.value, outcome="rejected")
        return []

    def _answerable(self, sender: str | None, rejection: Rejection) -> bool:
        """Whether a refusal goes back to ``sender``: a node of the run that may hear it (not
        the outside world, not this node, not a sender the header may only pretend to be)."""
        if not sender or sender in (SIM, self.node_id) or rejection.code in UNANSWERED_CODES:
            return False
        if self.senders is not None and not self.senders.answerable(sender):
            return False
        try:
            topic_for(sender, self.prefix)
        except ValueError:
            return False
        return True

    def _park(self, uow, rejection: Rejection, rec: Record, *, msgid: str | None,
              kind: str, sender: str | None, infno: str, sim_time: datetime | None,
              consumed: bool) -> None:
        """Stage the dead letter of a refused record: why, and the record as it came."""
        value = rec.value
        letter = Outgoing("DeadLettered", DEAD_LETTERS, "", {
            "error": wire.error_out(rejection, self.node_id),
            "original_msgid": msgid, "original_kind": kind or "",
            "original_transaction": infno or "", "original_sender": sender,
            "consumed": consumed, "original_topic": rec.topic,
            "original_partition": rec.partition, "original_offset": rec.offset,
            "original_key": None if rec.key is None else rec.key[:PARKED_HEADER_BYTES],
            "original_headers": [{"name": name[:255], "value": text[:PARKED_HEADER_BYTES]}
                                 for name, text in rec.headers[:PARKED_HEADERS]],
            "original_value": value[:PARKED_BYTES], "original_length": len(value),
            "original_sha256": hashlib.sha256(value).hexdigest(),
        }, sim_time=sim_time or self.clock(), key=self.node_id)
        self._stage(uow, [letter], cause=None, causation_id=_fits("msgid", msgid),
                    owned=False)
        self.sensor.on_dead_lettered(self.node_id, rejection.code.value)

    def _record_failure(self, rec: Record) -> list[int]:
        """A message whose handler crashed: record it as refused so the node moves on."""
        log.exception("%s: handler failed on %s[%d]@%d", self.node_id, rec.topic,
                      rec.partition, rec.offset)
        meta = _meta(rec)
        rejection = Rejection(ErrorCode.HANDLER_FAILED,
                              "the node failed while handling this message; it was set aside "
                              "and the node went on (see the node's log)", None, self.node_id)
        with self.db.unit_of_work() as uow:
            self._refuse_early(uow, rejection, rec, msgid=meta["msgid"], kind=meta["kind"],
                               sender=meta["sender"], correlation_id=meta["correlation_id"],
                               infno="", sim_time=None)
            self._commit(uow)
        return []

    # -- outgoing -----------------------------------------------------------------

    def _stage(self, uow, outs: list[Outgoing], cause: Message | None,
               causation_id: str | None = None, owned: bool = True) -> list[str]:
        """Put ``outs`` in the outbox; their msgids."""
        causation = cause.msgid if cause else causation_id
        msgids = []
        for out in outs:
            sim_time = out.sim_time or (cause.sim_time if cause else None)
            env = encode_outgoing(self.codec, self.node_id, out, self.prefix,
                                  causation_id=causation, sim_time=sim_time, now=self.clock())
            uow.add_outbox(msgid=env.msgid, kind=out.kind, correlation_id=out.correlation_id,
                           topic=env.topic, key=env.key, value=env.value,
                           caused_by=causation if owned else None)
            msgids.append(env.msgid)
        return msgids


# Table records read in this process: (translator, bytes) -> [kind, record, Message or
# None]. Bounded: a table holds one record per region and version, read in the first
# batches of every region; what is evicted is only decoded again.
_TABLE_READS: dict[tuple[object, bytes], list] = {}
TABLE_READS_KEPT = 4096


def _forget_oldest(cache: dict) -> None:
    if len(cache) > TABLE_READS_KEPT:
        for key in list(cache)[:len(cache) - TABLE_READS_KEPT // 2]:
            cache.pop(key, None)


def _table_message(translator, value: bytes, kind: str, data: dict) -> Message:
    """The table record as a message in English names, translated once per process (the
    nodes reading it share it, read-only)."""
    found = _TABLE_READS.get((translator, value))
    if found is not None and found[2] is not None:
        return found[2]
    message = Message(kind, data["header"], translator.inbound(kind, data))
    if found is not None:
        found[2] = message
    return message


def _header(rec: Record, name: str) -> str | None:
    for key, value in rec.headers:
        if key == name:
            return value.decode("utf-8", "replace")
    return None


def _day(moment: datetime | None):
    return moment.date() if moment is not None else None


def _plain(rec: Record) -> Record:
    """A record as the loop reads it: a missing value or header value (Kafka allows both)
    is empty bytes."""
    if rec.value is not None and all(v is not None for _, v in rec.headers):
        return rec
    return Record(rec.topic, rec.partition, rec.offset, rec.key, rec.value or b"",
                  tuple((k, v or b"") for k, v in rec.headers))


def _fits(name: str, value) -> str | None:
    """``value`` when it is a text its header field takes (``HEADER_TEXT``), else None."""
    if isinstance(value, str) and value and len(value) <= HEADER_TEXT[name]:
        return value
    return None


def _meta(rec: Record) -> dict:
    """What a record's own headers say of it (a message not read yet): each only if it fits
    its column; the message id defaults to the record's place on the bus, the claim to the
    record's key."""
    given = {}
    for name, value in rec.headers:
        if name in ("msgid", "kind", "sender", "correlation_id") and name not in given:
            given[name] = value.decode("utf-8", "replace")
    place = f"{rec.topic}:{rec.partition}:{rec.offset}"[-HEADER_TEXT["msgid"]:]
    kind = given.get("kind", "")
    key = (rec.key or b"").decode("utf-8", "replace")
    return {"msgid": _fits("msgid", given.get("msgid")) or place, "place": place,
            "kind": kind if len(kind) <= 64 else "",
            "sender": _fits("sender", given.get("sender")),
            "correlation_id": _fits("correlation_id", given.get("correlation_id"))
            or _fits("correlation_id", key) or ""}


@dataclass(frozen=True)
class Envelope:
    msgid: str
    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


def encode_outgoing(codec: Codec, sender: str, out: Outgoing, prefix: str, *,
                    causation_id: str | None = None,
                    sim_time: datetime | None = None,
                    now: datetime | None = None) -> Envelope:
    """Give an outgoing message its full header and its Avro bytes; nothing is sent.
    ``now`` is the sender's own clock (a skewed node stamps a skewed ``sent_at``)."""
    now = now or utcnow()
    msgid = new_msgid(sender)
    header = {
        "msgid": msgid, "infno": codec.infno(out.kind), "infver": codec.version(out.kind),
        "correlation_id": out.correlation_id, "causation_id": causation_id,
        "sender": sender, "recipient": out.to,
        "sim_time": out.sim_time or sim_time or now, "sent_at": now,
    }
    body = wire.translator(codec).outbound(out.kind, out.body)
    value = codec.encode(out.kind, {"header": header, **body})
    key = out.correlation_id if out.key is None else out.key
    return Envelope(msgid, topic_for(out.to, prefix), key.encode(), value,
                    record_headers(msgid, out.kind, sender, out.correlation_id))


def record_headers(msgid: str, kind: str, sender: str,
                   correlation_id: str) -> tuple[tuple[str, bytes], ...]:
    """Bus record headers: every message is traceable to its claim without decoding it."""
    return (("msgid", msgid.encode()), ("kind", kind.encode()), ("sender", sender.encode()),
            ("correlation_id", correlation_id.encode()))

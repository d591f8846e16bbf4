"""Faults on the wire: each node's bus is wrapped so what it sends can be damaged on the way.

``FaultyBus`` wraps the run's bus for one node; its producer passes every record through
the interface faults of that sender (``testbed.interface_faults.rewrite``: the record is
written with another schema, below the node's translator) and then the transport faults
of the link it travels (sender -> receiver): delay, drop, duplicate, reorder, corrupted
bytes, a partition between a region and the hub. Consumers are the run's own: what
reaches a topic is read as it is.

The producer holds what it is given until ``flush``, as a real client batches, and then
plays the link's faults, each drawn from the record's own identity (its msgid, and for a
drop the attempt), so a run is reproducible:

- ``reorder``: records of different keys overtake one another; a key's records never do
  (a partition keeps a key's order, and a key is a claim);
- ``delay``: a record goes ``ms`` plus a jitter later; ``flush`` returns only once it is
  sent, so an outbox never marks unsent work sent;
- ``drop`` and ``partition``: the record is lost before the broker acknowledges it, and
  so is every later record of its key in the flush (the broker keeps a partition's order);
  ``flush`` raises ``BusError``, the sender's relay fails, its thread retries and its outbox
  resends everything of the flush; receivers absorb what arrived twice by msgid;
- ``duplicate``: the record is sent twice.

``BrokerOutage`` emulates a stopped broker on a bus that cannot be restarted (the
in-process bus, or a cluster the run does not own): while it is down every send and
commit fails with ``BusError`` and polls bring nothing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from clearsim.bus.base import Bus, BusError, Consumer, Producer
from clearsim.codec import Codec
from clearsim.faults import Fault, FaultPlan, jitter_ms
from testbed import interface_faults


def node_of_topic(topic: str, prefix: str) -> str:
    """The node that reads ``topic`` (the inverse of ``clearsim.messages.topic_for``)."""
    rest = topic[len(prefix) + 1:] if topic.startswith(prefix + ".") else topic
    kind, _, code = rest.partition(".")
    return kind if kind in ("hub", "policies", "dlq") else f"{kind}-{code}"


def header(headers, name: str) -> str:
    for key, value in headers:
        if key == name:
            return value.decode("utf-8", "replace")
    return ""


class FaultyBus(Bus):
    def __init__(self, bus: Bus, plan: FaultPlan, node_id: str, codec: Codec, prefix: str):
        self.bus = bus
        self.plan = plan
        self.node_id = node_id
        self.codec = codec
        self.prefix = prefix
        self.default_partitions = getattr(bus, "default_partitions", 3)
        self.attempts: dict[str, int] = {}        # msgid -> times offered to the broker
        self.logged: set[tuple[str, str]] = set()  # (fault id, msgid) injections logged

    def ensure_topics(self, topics, partitions=None) -> None:
        self.bus.ensure_topics(topics, partitions)

    def producer(self) -> Producer:
        return FaultyProducer(self.bus.producer(), self)

    def consumer(self, group: str, topics: list[str]) -> Consumer:
        return self.bus.consumer(group, topics)

    def close(self) -> None:   # the run's bus is closed by the run
        return None


@dataclass
class _Out:
    """One record waiting in the faulty producer for its flush."""
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple
    receiver: str
    claim: str
    msgid: str
    due: float = 0.0
    copies: int = 1
    lost: Fault | None = None

    @property
    def kind(self) -> str:
        return header(self.headers, "kind")

    @property
    def ident(self) -> tuple[str, str, str]:
        """What a fault's draw is keyed by: the same record in every run of a scenario."""
        return (self.claim, self.kind, self.receiver)


class FaultyProducer(Producer):
    def __init__(self, inner: Producer, bus: FaultyBus):
        self.inner = inner
        self.bus = bus
        self.pending: list[_Out] = []

    def send(self, topic, key, value, headers=()) -> None:
        receiver = node_of_topic(topic, self.bus.prefix)
        kind, claim = header(headers, "kind"), header(headers, "correlation_id")
        msgid = header(headers, "msgid")
        value = interface_faults.rewrite(self.bus.plan, self.bus.codec, self.bus.node_id,
                                         receiver, kind, claim, value)
        value = interface_faults.damage(self.bus.plan, self.bus.node_id, receiver, kind,
                                        claim, msgid, value)
        self.pending.append(_Out(topic, key, value, tuple(headers), receiver, claim, msgid))

    # -- the link's faults --------------------------------------------------------

    def _active(self, kind: str, receiver: str) -> list[Fault]:
        plan, sender = self.bus.plan, self.bus.node_id
        return [f for f in plan.of(kind) if plan.active(f) and f.on_link(sender, receiver)]

    def _cut(self, receiver: str) -> list[Fault]:
        """Partitions between this sender and ``receiver`` (a region and the hub)."""
        plan, sender = self.bus.plan, self.bus.node_id
        return [f for f in plan.of("partition") if plan.active(f)
                and {sender, receiver} == {f.get("node"), "hub"}]

    def _injected(self, fault: Fault, out: _Out, detail: str, once: bool = True) -> None:
        if once:
            if (fault.id, out.msgid) in self.bus.logged:
                return
            self.bus.logged.add((fault.id, out.msgid))
        self.bus.plan.record(fault, "injected", claim_id=out.claim or None,
                             node=self.bus.node_id, day=self.bus.plan.today, detail=detail)

    def _reorder(self, outs: list[_Out]) -> list[_Out]:
        """Keys touched by a reorder fault go after the others, in reverse order of their
        first record; each key's records keep their order."""
        groups: dict[tuple, list[_Out]] = {}
        for out in outs:
            groups.setdefault((out.topic, out.key), []).append(out)
        still, moved = [], []
        for records in groups.values():
            first = records[0]
            touching = [f for f in self._active("reorder", first.receiver)
                        if f.draws(*first.ident)]
            (moved if touching else still).append((records, touching))
        order = [o for records, _ in still for o in records]
        order += [o for records, _ in reversed(moved) for o in records]
        was = {id(o): i for i, o in enumerate(outs)}
        now = {id(o): i for i, o in enumerate(order)}
        for records, touching in moved:
            first = records[0]
            before = [o for o in outs if was[id(o)] > was[id(first)]
                      and now[id(o)] < now[id(first)]]
            if before:
                self._injected(touching[0], first, f"{first.kind} {first.msgid} overtaken "
                                                   f"by {len(before)} later records")
        return order

    def _play(self, out: _Out, now: float) -> None:
        """Decide what the link does to ``out``."""
        kind = out.kind
        attempt = self.bus.attempts[out.msgid] = self.bus.attempts.get(out.msgid, 0) + 1
        for fault in self._cut(out.receiver):
            if fault.draws(out.claim):
                out.lost = fault
                self._injected(fault, out, f"{kind} {out.msgid} to {out.receiver} not "
                                           "acknowledged: region and hub cut off")
                return
        for fault in self._active("drop", out.receiver):
            if fault.draws(*out.ident, attempt):
                out.lost = fault
                self._injected(fault, out, f"{kind} {out.msgid} to {out.receiver} lost "
                                           f"(attempt {attempt})", once=False)
                return
        for fault in self._active("delay", out.receiver):
            if fault.draws(*out.ident):
                late = int(fault.get("ms")) + jitter_ms(fault, *out.ident)
                out.due = max(out.due, now + late / 1000)
                self._injected(fault, out, f"{kind} {out.msgid} to {out.receiver} "
                                           f"{late} ms late")
        for fault in self._active("duplicate", out.receiver):
            if attempt == 1 and fault.draws(*out.ident):
                out.copies = 2
                self._injected(fault, out, f"{kind} {out.msgid} to {out.receiver} sent twice")

    def flush(self, timeout=None) -> None:
        outs, self.pending = self.pending, []
        if not self.bus.plan.closed:
            outs = self._reorder(outs)
        now = time.monotonic()
        latest: dict[tuple, float] = {}
        for out in outs:
            out.due = now
            if not self.bus.plan.closed:
                self._play(out, now)
            key = (out.topic, out.key)
            out.due = latest[key] = max(out.due, latest.get(key, now))   # a key keeps order
        blocked: set[tuple] = set()
        lost = []
        for out in sorted(outs, key=lambda o: o.due):   # stable: ties keep their order
            key = (out.topic, out.key)
            if out.lost is not None or key in blocked:
                blocked.add(key)
                lost.append(out)
                continue
            wait = out.due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            for _ in range(out.copies):
                self.inner.send(out.topic, out.key, out.value, out.headers)
        try:
            self.inner.flush(timeout)
        except BusError as exc:      # the broker's own failure, beside the link's
            if exc.unacknowledged is not None:
                exc.unacknowledged |= {o.msgid for o in lost}
            raise
        if lost:
            raise BusError(f"{len(lost)} of {len(outs)} records from {self.bus.node_id} were "
                           f"not acknowledged ({', '.join(sorted({o.receiver for o in lost}))})",
                           frozenset(o.msgid for o in lost))

    def close(self) -> None:
        self.pending = []     # unacknowledged: the outbox still holds them
        self.inner.close()


# -- a broker that is stopped and started again ---------------------------------------

class BrokerOutage(Bus):
    """The run's bus, which can be made unavailable for a while (``down_for``)."""

    def __init__(self, bus: Bus):
        self.bus = bus
        self.default_partitions = getattr(bus, "default_partitions", 3)
        self.down = threading.Event()

    def down_for(self, seconds: float) -> None:
        self.down.set()
        try:
            time.sleep(seconds)
        finally:
            self.down.clear()

    def check(self, what: str) -> None:
        if self.down.is_set():
            raise BusError(f"the broker is down: {what} failed")

    def ensure_topics(self, topics, partitions=None) -> None:
        self.check("creating topics")
        self.bus.ensure_topics(topics, partitions)

    def producer(self) -> Producer:
        return _OutageProducer(self.bus.producer(), self)

    def consumer(self, group: str, topics: list[str]) -> Consumer:
        return _OutageConsumer(self.bus.consumer(group, topics), self)

    def close(self) -> None:
        self.bus.close()


class _OutageProducer(Producer):
    def __init__(self, inner: Producer, outage: BrokerOutage):
        self.inner = inner
        self.outage = outage

    def send(self, topic, key, value, headers=()) -> None:
        self.outage.check(f"a send to {topic}")
        self.inner.send(topic, key, value, headers)

    def flush(self, timeout=None) -> None:
        self.outage.check("a flush")
        self.inner.flush(timeout)

    def close(self) -> None:
        self.inner.close()


class _OutageConsumer(Consumer):
    def __init__(self, inner: Consumer, outage: BrokerOutage):
        self.inner = inner
        self.outage = outage

    def poll(self, timeout=0.1, max_records=500):
        if self.outage.down.is_set():
            time.sleep(min(timeout, 0.05))
            return []
        return self.inner.poll(timeout, max_records)

    def commit(self, offsets=None) -> None:
        self.outage.check("an offset commit")
        self.inner.commit(offsets)

    def rewind(self) -> None:
        self.inner.rewind()

    def close(self) -> None:
        self.inner.close()

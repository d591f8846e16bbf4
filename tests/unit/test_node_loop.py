"""The node loop's batches on the in-process bus and SQLite: what one transaction per batch
keeps when several messages share it, what the relay sends and sends again, and how long a
step waits for records."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select

from clearsim import wire
from clearsim.bus.base import Bus, BusError, Consumer, Producer
from clearsim.bus.memory import MemoryBus
from clearsim.codec import Codec
from clearsim.db import Database, processed_messages
from clearsim.errors import ClearsimError, ErrorCode
from clearsim.messages import HUB, Outgoing, region_node, topic_for
from clearsim.metrics import CountingSensor
from clearsim.node import Node, encode_outgoing
from clearsim.testing.samples import sample_record

metadata = MetaData()
things = Table("things", metadata, Column("id", Integer, primary_key=True),
               Column("name", String(32), nullable=False))

SENDER = region_node("110000")
HOME = region_node("360400")


@pytest.fixture(scope="module")
def codec():
    return Codec()


def body(codec: Codec, kind: str) -> dict:
    """A body as a handler builds it (English names, fen)."""
    national = {k: v for k, v in sample_record(codec, kind).items() if k != "header"}
    return wire.translator(codec).inbound(kind, national)


def admit(codec: Codec):
    """A handler: records the claim, answers its insuring region; refuses claims named
    BAD after writing."""
    answer = body(codec, "AdmitPatient")

    def handler(msg, conn):
        conn.execute(insert(things).values(name=msg.correlation_id))
        if msg.correlation_id.startswith("BAD"):
            raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID, "refused after writing",
                                "ipt_no")
        return [Outgoing("AdmitPatient", HOME, msg.correlation_id, answer)]
    return handler


class Loop:
    """A hub node on its own SQLite file and bus; the test plays the regions."""

    def __init__(self, tmp_path, codec: Codec, bus: Bus | None = None, **node_args):
        self.codec = codec
        self.memory = MemoryBus(default_partitions=1)    # one partition: order is visible
        self.prefix = "t" + uuid.uuid4().hex[:10]
        self.sensor = CountingSensor()
        self.db = Database(f"sqlite:///{tmp_path / 'hub.db'}", metadata)
        self.node = Node(node_id=HUB, db=self.db, bus=bus or self.memory, codec=codec,
                         handlers={"SubmitClaim": admit(codec)}, make_context=lambda c: c,
                         prefix=self.prefix, sensor=self.sensor, **node_args)
        self.submit_body = body(codec, "SubmitClaim")
        self.watch = {to: self.memory.consumer(f"watch-{to}", [topic_for(to, self.prefix)])
                      for to in (SENDER, HOME)}

    def submit(self, claim: str):
        return encode_outgoing(self.codec, SENDER,
                               Outgoing("SubmitClaim", HUB, claim, self.submit_body),
                               self.prefix)

    def put(self, *envs) -> None:
        producer = self.memory.producer()
        for env in envs:
            producer.send(env.topic, env.key, env.value, env.headers)

    def arrived(self, to: str) -> list[tuple[str, str, str]]:
        """(kind, correlation id, msgid) of what reached ``to`` since the last look."""
        return [(h["kind"], h["correlation_id"], h["msgid"])
                for h in ({k: v.decode() for k, v in r.headers}
                          for r in self.watch[to].poll(timeout=0))]

    def names(self) -> list[str]:
        with self.db.engine.connect() as conn:
            return [r.name for r in conn.execute(select(things).order_by(things.c.id))]

    def outcomes(self) -> dict[str, str]:
        with self.db.engine.connect() as conn:
            return dict(conn.execute(select(processed_messages.c.msgid,
                                            processed_messages.c.outcome)).all())


@pytest.fixture
def loop(tmp_path, codec):
    loop = Loop(tmp_path, codec)
    loop.node.start()
    yield loop
    loop.node.stop()
    loop.db.dispose()


def test_the_same_message_twice_in_one_batch_has_one_effect_and_one_answer(loop):
    first, other = loop.submit("C-1"), loop.submit("C-2")
    loop.put(first, first, other)
    assert loop.node.step(timeout=0) == 3                      # one batch, one transaction
    assert loop.names() == ["C-1", "C-2"]
    assert loop.sensor.counts["duplicates"] == 1
    assert loop.sensor.counts["messages_in"] == 3              # not taken apart and retried
    assert loop.outcomes() == {first.msgid: "handled", other.msgid: "handled"}
    answers = loop.arrived(HOME)
    assert [(kind, claim) for kind, claim, _ in answers] == [("AdmitPatient", "C-1"),
                                                             ("AdmitPatient", "C-2")]
    assert loop.db.pending_outbox() == []
    # Delivered again in a later batch: no effect, the answer it caused goes again.
    loop.put(first)
    assert loop.node.step(timeout=0) == 1
    assert loop.names() == ["C-1", "C-2"]
    assert loop.arrived(HOME) == answers[:1]


def test_a_refusal_between_handled_messages_leaves_only_the_refusal(loop):
    envs = [loop.submit(claim) for claim in ("GOOD-1", "BAD-1", "GOOD-2")]
    loop.put(*envs)
    assert loop.node.step(timeout=0) == 3
    assert loop.names() == ["GOOD-1", "GOOD-2"]
    assert loop.outcomes() == {envs[0].msgid: "handled", envs[1].msgid: "rejected",
                               envs[2].msgid: "handled"}
    assert [claim for _, claim, _ in loop.arrived(HOME)] == ["GOOD-1", "GOOD-2"]
    refusal = loop.arrived(SENDER)
    assert [(kind, claim) for kind, claim, _ in refusal] == [("MessageRejected", "BAD-1")]
    assert loop.db.pending_outbox() == []
    # The refused message comes again: not handled again; the same refusal goes again.
    loop.put(envs[1])
    loop.node.step(timeout=0)
    assert loop.names() == ["GOOD-1", "GOOD-2"]
    assert loop.sensor.counts["rejected"] == 1 and loop.arrived(SENDER) == refusal


# -- the relay --------------------------------------------------------------------

class FlakyBus(Bus):
    """The in-process bus behind a producer whose flushes fail while told to. Each failure
    names the claims whose records the broker loses (None: it acknowledges nothing and may
    have lost anything); the records of the other claims arrive."""

    def __init__(self, bus: MemoryBus):
        self.bus = bus
        self.default_partitions = bus.default_partitions
        self.failures: list[set[str] | None] = []    # one per failing flush, in turn

    def ensure_topics(self, topics, partitions=None) -> None:
        self.bus.ensure_topics(topics, partitions)

    def producer(self) -> Producer:
        return FlakyProducer(self)

    def consumer(self, group, topics) -> Consumer:
        return self.bus.consumer(group, topics)


class FlakyProducer(Producer):
    def __init__(self, flaky: FlakyBus):
        self.flaky = flaky
        self.real = flaky.bus.producer()
        self.buffer: list[tuple] = []

    def send(self, topic, key, value, headers=()) -> None:
        self.buffer.append((topic, key, value, headers))

    def flush(self, timeout=None) -> None:
        buffer, self.buffer = self.buffer, []
        failure = self.flaky.failures.pop(0) if self.flaky.failures else False
        lost = []
        for record in buffer:
            headers = {k: v.decode() for k, v in record[3]}
            if failure is None or (failure and headers["correlation_id"] in failure):
                lost.append(headers["msgid"])
            else:
                self.real.send(*record)
        if failure is not False:
            raise BusError("not acknowledged", None if failure is None else frozenset(lost))

    def close(self) -> None:
        return None


@pytest.fixture
def flaky(tmp_path, codec):
    bus = FlakyBus(MemoryBus(default_partitions=1))
    loop = Loop(tmp_path, codec, bus=bus)
    loop.memory = bus.bus
    loop.watch = {to: bus.bus.consumer(f"watch-{to}", [topic_for(to, loop.prefix)])
                  for to in (SENDER, HOME)}
    loop.flaky = bus
    loop.node.start()
    yield loop
    loop.node.stop()
    loop.db.dispose()


def test_a_relay_that_failed_sends_everything_again_on_the_next_step(flaky):
    flaky.put(flaky.submit("C-1"), flaky.submit("C-2"))
    flaky.flaky.failures = [None]                  # the broker acknowledges nothing
    with pytest.raises(BusError):
        flaky.node.step(timeout=0)
    assert flaky.names() == ["C-1", "C-2"]         # the batch itself was committed
    assert flaky.arrived(HOME) == []
    assert [r.correlation_id for r in flaky.db.pending_outbox()] == ["C-1", "C-2"]
    assert flaky.node.step(timeout=0) == 0         # nothing new to read: the relay goes on
    assert [claim for _, claim, _ in flaky.arrived(HOME)] == ["C-1", "C-2"]
    assert flaky.db.pending_outbox() == []


def test_a_relay_acknowledged_in_part_sends_again_only_what_was_lost(flaky):
    flaky.put(*(flaky.submit(claim) for claim in ("C-1", "C-2", "C-3")))
    flaky.flaky.failures = [{"C-2"}]
    with pytest.raises(BusError):
        flaky.node.step(timeout=0)
    assert [claim for _, claim, _ in flaky.arrived(HOME)] == ["C-1", "C-3"]
    assert [r.correlation_id for r in flaky.db.pending_outbox()] == ["C-2"]
    flaky.put(flaky.submit("C-4"))
    assert flaky.node.step(timeout=0) == 1
    assert [claim for _, claim, _ in flaky.arrived(HOME)] == ["C-2", "C-4"]
    assert flaky.db.pending_outbox() == []


def test_a_row_released_by_another_thread_is_relayed_by_the_next_step(loop):
    loop.put(loop.submit("C-1"))
    loop.node.step(timeout=0)
    [answer] = loop.arrived(HOME)
    with loop.db.unit_of_work() as uow:            # held back while a fault lasts
        row = uow.outbox_row(answer[2])
        uow.hold(row.id, "schema-1")
        uow.commit()
    assert loop.node.release_held() == 1           # as the runner does, from its thread
    assert loop.node.step(timeout=0) == 0
    assert loop.arrived(HOME) == [answer]


# -- waiting ----------------------------------------------------------------------

class Watched(Bus):
    """The in-process bus, noting the timeout of every poll."""

    def __init__(self, bus: MemoryBus):
        self.bus = bus
        self.default_partitions = bus.default_partitions
        self.timeouts: list[float] = []

    def ensure_topics(self, topics, partitions=None) -> None:
        self.bus.ensure_topics(topics, partitions)

    def producer(self) -> Producer:
        return self.bus.producer()

    def consumer(self, group, topics) -> Consumer:
        consumer = self.bus.consumer(group, topics)
        timeouts = self.timeouts

        class Noting(Consumer):
            def poll(self, timeout=0.1, max_records=500):
                timeouts.append(timeout)
                return consumer.poll(timeout=timeout, max_records=max_records)

            def commit(self, offsets=None):
                consumer.commit(offsets)

            def rewind(self):
                consumer.rewind()

            def close(self):
                consumer.close()
        return Noting()


def test_a_step_never_waits_past_the_nodes_next_timer(tmp_path, codec):
    ticks = []
    bus = Watched(MemoryBus(default_partitions=1))
    loop = Loop(tmp_path, codec, bus=bus, idle_every=0.02,
                on_idle=lambda ctx: ticks.append(1) or [])
    loop.node.start()
    try:
        loop.node.step(timeout=30)
        loop.node.step(timeout=30)
    finally:
        loop.node.stop()
        loop.db.dispose()
    assert bus.timeouts[0] == 0                    # the timer was due at once
    assert 0 <= bus.timeouts[1] <= 0.02
    assert len(ticks) == 2

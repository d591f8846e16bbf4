"""The bus contract every transport must honour (in-process and Kafka run the same suite)."""

from __future__ import annotations

import time

import pytest
from kafka.partitioner.default import murmur2

from clearsim.bus.base import TopicPartition


def drain(consumer, count: int, seconds: float = 30.0) -> list:
    """Poll until ``count`` records arrived (or the deadline), then a little longer to see
    that nothing more comes."""
    got = []
    deadline = time.monotonic() + seconds
    while len(got) < count and time.monotonic() < deadline:
        got += consumer.poll(timeout=0.2)
    got += consumer.poll(timeout=0.3)
    return got


class BusContract:
    """Subclasses provide a ``bus`` fixture; ``topic_prefix`` is unique per test."""

    @pytest.fixture
    def topic(self, bus, topic_prefix):
        name = f"{topic_prefix}.contract"
        bus.ensure_topics([name], 3)
        return name

    def send(self, bus, topic, items) -> None:
        producer = bus.producer()
        for key, value in items:
            producer.send(topic, key, value, (("kind", b"Test"),))
        producer.flush()
        producer.close()

    def test_key_value_and_headers_round_trip(self, bus, topic):
        self.send(bus, topic, [(b"C-1", b"hello")])
        consumer = bus.consumer(f"{topic}.g", [topic])
        [record] = drain(consumer, 1)
        consumer.close()
        assert (record.key, record.value, dict(record.headers)) == (b"C-1", b"hello",
                                                                    {"kind": b"Test"})

    def test_a_key_lands_in_kafkas_murmur2_partition_in_order(self, bus, topic):
        self.send(bus, topic, [(b"C-7", str(i).encode()) for i in range(5)])
        consumer = bus.consumer(f"{topic}.g", [topic])
        records = drain(consumer, 5)
        consumer.close()
        assert {r.partition for r in records} == {(murmur2(b"C-7") & 0x7FFFFFFF) % 3}
        assert [r.value for r in records] == [str(i).encode() for i in range(5)]

    def test_two_groups_each_see_every_record(self, bus, topic):
        self.send(bus, topic, [(f"C-{i}".encode(), b"x") for i in range(6)])
        for group in ("a", "b"):
            consumer = bus.consumer(f"{topic}.{group}", [topic])
            assert len(drain(consumer, 6)) == 6
            consumer.close()

    def test_uncommitted_records_are_delivered_again(self, bus, topic):
        self.send(bus, topic, [(f"C-{i}".encode(), b"x") for i in range(4)])
        first = bus.consumer(f"{topic}.g", [topic])
        assert len(drain(first, 4)) == 4
        first.close()                      # no commit: a crash
        second = bus.consumer(f"{topic}.g", [topic])
        assert len(drain(second, 4)) == 4
        second.close()

    def test_committed_records_are_not_delivered_again(self, bus, topic):
        self.send(bus, topic, [(f"C-{i}".encode(), b"x") for i in range(4)])
        first = bus.consumer(f"{topic}.g", [topic])
        assert len(drain(first, 4)) == 4
        first.commit()
        first.close()
        self.send(bus, topic, [(b"C-9", b"later")])
        second = bus.consumer(f"{topic}.g", [topic])
        assert [r.value for r in drain(second, 1)] == [b"later"]
        second.close()

    def test_commit_of_explicit_offsets(self, bus, topic):
        key = b"C-1"
        part = (murmur2(key) & 0x7FFFFFFF) % 3
        self.send(bus, topic, [(key, str(i).encode()) for i in range(3)])
        first = bus.consumer(f"{topic}.g", [topic])
        assert len(drain(first, 3)) == 3
        first.commit({TopicPartition(topic, part): 1})    # only the first one is done
        first.close()
        second = bus.consumer(f"{topic}.g", [topic])
        assert [r.value for r in drain(second, 2)] == [b"1", b"2"]
        second.close()

    def test_ensure_topics_is_idempotent(self, bus, topic):
        bus.ensure_topics([topic], 3)
        self.send(bus, topic, [(b"k", b"v")])

    def test_rewind_returns_to_the_committed_offsets(self, bus, topic):
        self.send(bus, topic, [(f"C-{i}".encode(), str(i).encode()) for i in range(3)])
        consumer = bus.consumer(f"{topic}.g", [topic])
        first = drain(consumer, 3)
        assert len(first) == 3
        consumer.rewind()                  # nothing was committed: all three again
        again = drain(consumer, 3)
        assert sorted(r.value for r in again) == sorted(r.value for r in first)
        consumer.commit()
        consumer.rewind()                  # now committed: nothing again
        assert consumer.poll(timeout=0.5) == []
        consumer.close()

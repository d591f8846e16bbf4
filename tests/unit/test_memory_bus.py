"""The bus contract on the in-process bus, plus its group assignment."""

import pytest

from clearsim.bus.memory import MemoryBus
from tests.unit.bus_contract import BusContract, drain


class TestMemoryBus(BusContract):
    @pytest.fixture
    def bus(self):
        return MemoryBus(default_partitions=3)


def test_two_members_of_a_group_split_the_partitions():
    bus = MemoryBus(default_partitions=3)
    bus.ensure_topics(["t"], 3)
    producer = bus.producer()
    for i in range(30):
        producer.send("t", f"C-{i}".encode(), b"x")
    a, b = bus.consumer("g", ["t"]), bus.consumer("g", ["t"])
    got_a, got_b = drain(a, 1, 1), drain(b, 1, 1)
    assert got_a and got_b
    assert len(got_a) + len(got_b) == 30
    assert not {r.partition for r in got_a} & {r.partition for r in got_b}


def test_a_record_wakes_only_the_consumers_of_its_topic():
    bus = MemoryBus(default_partitions=1)
    bus.ensure_topics(["a", "b"], 1)
    reader_a, reader_b = bus.consumer("ga", ["a"]), bus.consumer("gb", ["b"])
    assert reader_a.poll(timeout=0) == [] and reader_b.poll(timeout=0) == []
    bus.producer().send("b", b"k", b"x")
    assert reader_b.wake.is_set() and not reader_a.wake.is_set()
    assert [r.value for r in reader_b.poll(timeout=0)] == [b"x"]


def test_a_waiting_consumer_returns_as_soon_as_a_record_arrives():
    import threading
    bus = MemoryBus(default_partitions=1)
    bus.ensure_topics(["a"], 1)
    reader = bus.consumer("g", ["a"])
    got = []
    waiter = threading.Thread(target=lambda: got.extend(reader.poll(timeout=30)))
    waiter.start()
    bus.producer().send("a", b"k", b"x")
    waiter.join(timeout=10)
    assert not waiter.is_alive() and [r.value for r in got] == [b"x"]


def test_records_every_group_has_committed_are_let_go_and_the_rest_kept():
    from clearsim.bus.memory import TRIM_EVERY
    bus = MemoryBus(default_partitions=1)
    bus.ensure_topics(["t"], 1)
    fast, slow = bus.consumer("fast", ["t"]), bus.consumer("slow", ["t"])
    producer = bus.producer()
    for i in range(3 * TRIM_EVERY):
        producer.send("t", b"k", str(i).encode())
    assert len(fast.poll(timeout=0, max_records=10 * TRIM_EVERY)) == 3 * TRIM_EVERY
    fast.commit()
    assert bus._logs["t"][0].base == 0          # the slow group has read nothing yet
    taken = slow.poll(timeout=0, max_records=2 * TRIM_EVERY)
    slow.commit()
    assert bus._logs["t"][0].base == 2 * TRIM_EVERY
    assert bus.lag() == TRIM_EVERY              # what the slow group still has to read
    slow.close()
    again = bus.consumer("slow", ["t"])         # a member of the group comes back
    rest = again.poll(timeout=0, max_records=10 * TRIM_EVERY)
    assert [r.offset for r in rest] == list(range(2 * TRIM_EVERY, 3 * TRIM_EVERY))
    assert taken[-1].offset + 1 == rest[0].offset


def test_a_table_topic_keeps_every_record_for_whoever_joins_later():
    from clearsim.bus.memory import TRIM_EVERY
    bus = MemoryBus(default_partitions=1)
    bus.ensure_topics(["x.policies"], 1)
    reader = bus.consumer("r1", ["x.policies"])
    for i in range(2 * TRIM_EVERY):
        bus.producer().send("x.policies", b"k", b"v")
    reader.poll(timeout=0, max_records=10 * TRIM_EVERY)
    reader.commit()
    late = bus.consumer("r2", ["x.policies"])
    assert len(late.poll(timeout=0, max_records=10 * TRIM_EVERY)) == 2 * TRIM_EVERY

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

"""The bus contract on a real Apache Kafka broker."""

from __future__ import annotations

import time

import pytest

from clearsim.bus import BusError
from clearsim.bus.kafka import KafkaBus
from clearsim.testing.kafka import free_port
from tests.unit.bus_contract import BusContract


class TestKafkaBus(BusContract):
    @pytest.fixture
    def bus(self, kafka_bootstrap):
        bus = KafkaBus(kafka_bootstrap)
        yield bus
        bus.close()


def test_a_bus_pointed_at_no_broker_fails_clearly_and_in_bounded_time():
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(BusError) as err:
        KafkaBus(address).ensure_topics(["t"], 1)
    assert address in str(err.value)
    assert time.monotonic() - started < 60

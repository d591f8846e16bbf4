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


def test_every_message_type_round_trips_through_the_broker(kafka_bootstrap, topic_prefix):
    """Each message of the interface, Avro-encoded, produced to and consumed from a real
    broker, decodes to exactly the record that was sent."""
    from clearsim.codec import Codec
    from clearsim.testing.samples import sample_record
    from tests.unit.bus_contract import drain

    codec = Codec()
    bus = KafkaBus(kafka_bootstrap)
    topic = f"{topic_prefix}.interface"
    bus.ensure_topics([topic], 3)
    sent = {name: sample_record(codec, name) for name in codec.names()}
    producer = bus.producer()
    for name, record in sent.items():
        producer.send(topic, name.encode(), codec.encode(name, record), (("kind", name.encode()),))
    producer.flush()
    producer.close()
    consumer = bus.consumer(f"{topic}.reader", [topic])
    records = drain(consumer, len(sent))
    consumer.close()
    bus.close()
    received = dict(codec.decode(r.value) for r in records)
    assert len(records) == len(sent) == len(received)
    assert received == sent

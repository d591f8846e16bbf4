"""Faults on the wire: each node's bus is wrapped so what it sends can be damaged on the way.

``FaultyBus`` wraps the run's bus for one node; its producer passes every record through
the interface faults of that sender (``testbed.interface_faults.rewrite``: the record is
written with another schema, below the node's translator) and then the transport faults
of the link it travels (sender -> receiver): delay, drop, duplicate, reorder, corrupted
bytes, a partition between a region and the hub. Consumers are the run's own: what
reaches a topic is read as it is.
"""

from __future__ import annotations

from clearsim.bus.base import Bus, Consumer, Producer
from clearsim.codec import Codec
from clearsim.faults import FaultPlan
from testbed import interface_faults


def node_of_topic(topic: str, prefix: str) -> str:
    """The node that reads ``topic`` (the inverse of ``clearsim.messages.topic_for``)."""
    rest = topic[len(prefix) + 1:] if topic.startswith(prefix + ".") else topic
    kind, _, code = rest.partition(".")
    return "hub" if kind == "hub" else f"{kind}-{code}"


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

    def ensure_topics(self, topics, partitions=None) -> None:
        self.bus.ensure_topics(topics, partitions)

    def producer(self) -> Producer:
        return FaultyProducer(self.bus.producer(), self)

    def consumer(self, group: str, topics: list[str]) -> Consumer:
        return self.bus.consumer(group, topics)

    def close(self) -> None:   # the run's bus is closed by the run
        return None


class FaultyProducer(Producer):
    def __init__(self, inner: Producer, bus: FaultyBus):
        self.inner = inner
        self.bus = bus

    def send(self, topic, key, value, headers=()) -> None:
        receiver = node_of_topic(topic, self.bus.prefix)
        kind, claim = header(headers, "kind"), header(headers, "correlation_id")
        value = interface_faults.rewrite(self.bus.plan, self.bus.codec, self.bus.node_id,
                                         receiver, kind, claim, value)
        value = interface_faults.damage(self.bus.plan, self.bus.node_id, receiver, kind,
                                        claim, header(headers, "msgid"), value)
        self.inner.send(topic, key, value, headers)

    def flush(self, timeout=None) -> None:
        self.inner.flush(timeout)

    def close(self) -> None:
        self.inner.close()

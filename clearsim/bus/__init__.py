"""The bus: one contract (``base``), an in-process and a Kafka implementation."""

from __future__ import annotations

from clearsim.bus.base import Bus, BusError, Consumer, Producer, Record, TopicPartition


def connect(url: str | None, default_partitions: int = 3, instance: str | None = None) -> Bus:
    """``None`` or ``memory`` → the in-process bus; ``kafka://h:p,h:p`` or ``h:p`` → Kafka
    (``instance``: the static group member id of its consumers, see ``KafkaBus``)."""
    if url in (None, "", "memory"):
        from clearsim.bus.memory import MemoryBus
        return MemoryBus(default_partitions)
    from clearsim.bus.kafka import KafkaBus
    return KafkaBus(url.removeprefix("kafka://"), default_partitions=default_partitions,
                    instance=instance)


__all__ = ["Bus", "BusError", "Consumer", "Producer", "Record", "TopicPartition", "connect"]

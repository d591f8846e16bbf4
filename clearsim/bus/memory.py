"""The in-process bus: Kafka's semantics (partitions by murmur2 key hash, consumer groups,
committed offsets, at-least-once redelivery) in one process, for the embedded default.

A record wakes only the consumers subscribed to its topic: a run of hundreds of nodes, each
waiting on its own topic, does not wake them all on every record. Records every group that
reads a topic has committed past are let go (Kafka's retention, cut to what a long run
needs: memory stays bounded by what is still to be read), except in table topics, which
are read from their start by whoever joins."""

from __future__ import annotations

import threading

from kafka.partitioner.default import murmur2

from clearsim.bus.base import Bus, Consumer, Producer, Record, TopicPartition
from clearsim.bus.topics import is_table

TRIM_EVERY = 1024      # records let go at a time, at least


def partition_for(key: bytes | None, partitions: int, counter: list[int]) -> int:
    """Kafka's default partitioner: murmur2 of the key; keyless records round-robin."""
    if key is None:
        counter[0] += 1
        return counter[0] % partitions
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class PartitionLog:
    """One partition: records from offset ``base`` on (those before were let go)."""

    def __init__(self):
        self.base = 0
        self.records: list[Record] = []

    @property
    def end(self) -> int:
        return self.base + len(self.records)

    def since(self, offset: int, count: int) -> list[Record]:
        start = max(offset - self.base, 0)
        return self.records[start:start + count]

    def trim(self, upto: int) -> None:
        """Let go of the records before offset ``upto``."""
        drop = min(upto, self.end) - self.base
        if drop >= TRIM_EVERY:
            del self.records[:drop]
            self.base += drop


class MemoryBus(Bus):
    def __init__(self, default_partitions: int = 3):
        self.default_partitions = default_partitions
        self._lock = threading.Condition()
        self._logs: dict[str, list[PartitionLog]] = {}
        self._committed: dict[tuple[str, TopicPartition], int] = {}
        self._members: dict[tuple[str, str], list["MemoryConsumer"]] = {}
        self._readers: dict[str, list["MemoryConsumer"]] = {}     # topic -> its consumers
        self._readers_groups: dict[str, set[str]] = {}           # topic -> groups, ever
        self._round_robin = [0]

    # -- topics -------------------------------------------------------------------

    def ensure_topics(self, topics: list[str], partitions: int | None = None) -> None:
        with self._lock:
            for topic in topics:
                self._logs.setdefault(topic, [PartitionLog() for _ in range(
                    partitions or self.default_partitions)])

    def partitions(self, topic: str) -> int:
        with self._lock:
            return len(self._logs[topic])

    # -- producing ----------------------------------------------------------------

    def _append(self, topic: str, key, value: bytes, headers) -> None:
        with self._lock:
            if topic not in self._logs:
                self._logs[topic] = [PartitionLog() for _ in range(self.default_partitions)]
            logs = self._logs[topic]
            p = partition_for(key, len(logs), self._round_robin)
            logs[p].records.append(Record(topic, p, logs[p].end, key, value, tuple(headers)))
            for consumer in self._readers.get(topic, ()):
                consumer.wake.set()

    def producer(self) -> Producer:
        return MemoryProducer(self)

    # -- consuming ----------------------------------------------------------------

    def consumer(self, group: str, topics: list[str]) -> Consumer:
        consumer = MemoryConsumer(self, group, list(topics))
        with self._lock:
            for topic in topics:
                self._logs.setdefault(topic, [PartitionLog()
                                              for _ in range(self.default_partitions)])
                self._members.setdefault((group, topic), []).append(consumer)
                self._readers.setdefault(topic, []).append(consumer)
                self._readers_groups.setdefault(topic, set()).add(group)
            self._rebalance(group, topics)
        return consumer

    def _leave(self, consumer: "MemoryConsumer") -> None:
        with self._lock:
            for topic in consumer.topics:
                members = self._members.get((consumer.group, topic), [])
                if consumer in members:
                    members.remove(consumer)
                readers = self._readers.get(topic, [])
                if consumer in readers:
                    readers.remove(consumer)
            self._rebalance(consumer.group, consumer.topics)

    def _rebalance(self, group: str, topics: list[str]) -> None:
        """Range assignment; every member restarts from the group's committed offsets."""
        for topic in topics:
            members = self._members.get((group, topic), [])
            for member in members:
                member.assigned = {tp for tp in member.assigned if tp.topic != topic}
            for p in range(len(self._logs[topic])):
                if members:
                    owner = members[p * len(members) // len(self._logs[topic])]
                    tp = TopicPartition(topic, p)
                    owner.assigned.add(tp)
                    owner.position[tp] = self._committed.get((group, tp), 0)

    def _commit(self, group: str, offsets: dict[TopicPartition, int]) -> None:
        with self._lock:
            for tp, offset in offsets.items():
                self._committed[(group, tp)] = offset
                if not is_table(tp.topic):
                    self._logs[tp.topic][tp.partition].trim(min(
                        self._committed.get((g, tp), 0) for g in self._groups(tp.topic)))

    def _groups(self, topic: str) -> set[str]:
        """Every group that has read ``topic`` (members now or not)."""
        return self._readers_groups.get(topic, set())

    def lag(self) -> int:
        """Records not yet committed by the groups that read them, over every topic."""
        with self._lock:
            return sum(log.end - self._committed.get((g, TopicPartition(topic, p)), 0)
                       for (g, topic) in self._members
                       for p, log in enumerate(self._logs[topic]))

    def committed(self, group: str, tp: TopicPartition) -> int:
        with self._lock:
            return self._committed.get((group, tp), 0)


class MemoryProducer(Producer):
    def __init__(self, bus: MemoryBus):
        self.bus = bus

    def send(self, topic, key, value, headers=()) -> None:
        self.bus._append(topic, key, value, headers)

    def flush(self, timeout=None) -> None:
        return None

    def close(self) -> None:
        return None


class MemoryConsumer(Consumer):
    def __init__(self, bus: MemoryBus, group: str, topics: list[str]):
        self.bus = bus
        self.group = group
        self.topics = topics
        self.assigned: set[TopicPartition] = set()
        self.position: dict[TopicPartition, int] = {}
        self.closed = False
        self.wake = threading.Event()      # set when a record reaches one of its topics

    def _take(self, max_records: int) -> list[Record]:
        out: list[Record] = []
        for tp in sorted(self.assigned, key=lambda t: (t.topic, t.partition)):
            log = self.bus._logs[tp.topic][tp.partition]
            start = max(self.position.get(tp, 0), log.base)
            chunk = log.since(start, max_records - len(out))
            if chunk:
                out.extend(chunk)
                self.position[tp] = start + len(chunk)
            if len(out) >= max_records:
                break
        return out

    def poll(self, timeout: float = 0.1, max_records: int = 500) -> list[Record]:
        with self.bus._lock:
            self.wake.clear()       # a record appended from here on sets it again
            records = self._take(max_records)
        if records or timeout <= 0:
            return records
        self.wake.wait(timeout)
        with self.bus._lock:
            return self._take(max_records)

    def commit(self, offsets=None) -> None:
        if offsets is None:
            with self.bus._lock:
                offsets = {tp: self.position[tp] for tp in self.assigned if tp in self.position}
        self.bus._commit(self.group, offsets)

    def rewind(self) -> None:
        with self.bus._lock:
            for tp in self.assigned:
                self.position[tp] = self.bus._committed.get((self.group, tp), 0)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.bus._leave(self)

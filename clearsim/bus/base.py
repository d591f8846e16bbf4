"""The bus contract: what a node needs from a message transport, and nothing more.

Two implementations keep the same semantics (tests/unit/test_bus_contract.py and
tests/integration/test_kafka_bus.py run one shared suite against both):

- ``KafkaBus`` (kafka-python) against a real Apache Kafka broker;
- ``MemoryBus``, in-process, for the embedded default and fast unit tests.

Semantics both honour:
- A topic has a fixed number of partitions. A record's partition is chosen from its key
  with Kafka's own murmur2 partitioner, so one claim's messages (keyed by claim) stay in
  order in one partition.
- A consumer belongs to a group. Within a group each partition is read by one member; the
  group's position is the committed offset. ``poll`` advances the member's in-memory
  position; only ``commit`` makes it durable. A member that closes (or dies) without
  committing leaves the records to be delivered again: at-least-once.
- ``send`` is asynchronous; ``flush`` returns once every sent record is acknowledged, or
  raises ``BusError`` (which may name the records not acknowledged: the others were).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


class BusError(Exception):
    """The transport failed (broker unreachable, send not acknowledged). ``unacknowledged``:
    the msgids (record header) of the records a failed flush did not get acknowledged,
    when the transport knows; None: any of them may be lost."""

    def __init__(self, message: str, unacknowledged: frozenset[str] | None = None):
        super().__init__(message)
        self.unacknowledged = unacknowledged


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = field(default=())


@dataclass(frozen=True)
class TopicPartition:
    topic: str
    partition: int


class Producer(ABC):
    @abstractmethod
    def send(self, topic: str, key: bytes | None, value: bytes,
             headers: tuple[tuple[str, bytes], ...] = ()) -> None: ...

    @abstractmethod
    def flush(self, timeout: float | None = None) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


class Consumer(ABC):
    @abstractmethod
    def poll(self, timeout: float = 0.1, max_records: int = 500) -> list[Record]:
        """Records past this member's position, in partition order; may be empty."""

    @abstractmethod
    def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        """Commit ``offsets`` (next offset to read, per partition), or the current
        positions of everything polled so far when ``offsets`` is None."""

    @abstractmethod
    def rewind(self) -> None:
        """Move back to the committed offsets: what was polled but not committed will be
        polled again (after a batch that could not be handled)."""

    @abstractmethod
    def close(self) -> None:
        """Leave the group without committing anything further."""

    def assignment(self) -> list[TopicPartition]:
        """The partitions this member holds now, as far as it knows (a bus that does not
        say: empty)."""
        return []


class Bus(ABC):
    """A factory for producers and consumers, plus topic administration."""

    @abstractmethod
    def ensure_topics(self, topics: list[str], partitions: int | None = None) -> None:
        """Create the topics that do not exist yet (idempotent)."""

    @abstractmethod
    def producer(self) -> Producer: ...

    @abstractmethod
    def consumer(self, group: str, topics: list[str]) -> Consumer: ...

    def close(self) -> None:
        """Release shared resources (admin clients); producers and consumers close alone."""

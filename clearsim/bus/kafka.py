"""The bus on Apache Kafka (kafka-python): the only module that imports kafka clients.

Producers are idempotent with ``acks=all``; ``flush`` waits for every acknowledgement (at
most ``FLUSH_TIMEOUT`` seconds unless told otherwise: a broker that is away is noticed, and
the sender's outbox tries again) and raises ``BusError`` on any failure, naming the records
not acknowledged. Consumers never auto-commit: the node commits offsets after its database
transaction (at-least-once), positions tracked per partition here.

On a cluster of three brokers or more, topics are created with three replicas and
``min.insync.replicas=2`` (``replication_settings``): with
``acks=all`` an acknowledged record is on two brokers, so losing any one loses nothing and
refuses no write. Riding over that loss is the client's part: the bootstrap list names
every broker, a send is retried (the idempotent producer keeps retries in order and single)
until ``DELIVERY_TIMEOUT_MS``, long enough for the cluster to notice a broker that died and
elect new leaders, and consumers find the new leaders and group coordinator by themselves.

Tuned for a node's relay, which sends everything its transaction caused and then flushes
once: the producer lingers (``LINGER_MS``) so the records of one relay leave in as few
requests as their partitions allow, with room for them (``BATCH_BYTES``); ``flush`` sends at
once whatever lingers, so the linger costs no latency. Consumers fetch as soon as one byte
is there and hold an empty fetch at most ``FETCH_WAIT_MS``.
"""

from __future__ import annotations

import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from clearsim.bus.base import Bus, BusError, Consumer, Producer, Record, TopicPartition
from clearsim.bus.topics import is_table

_TIMEOUT_MS = 15000
FLUSH_TIMEOUT = 10.0
LINGER_MS = 5
BATCH_BYTES = 256 * 1024
FETCH_WAIT_MS = 100
# A send is retried this long: more than a KRaft controller takes to fence a broker that
# stopped answering (broker.session.timeout.ms, 9 s by default) and move its leaderships.
DELIVERY_TIMEOUT_MS = 60000
# A broker that went away is tried again at least every second (the Java client's default;
# kafka-python's is 30 s): each failed try refreshes the metadata, which is how a client
# learns the partitions' new leaders soon after they are elected.
RECONNECT_BACKOFF_MAX_MS = 1000


def replication_settings(brokers: int) -> dict[str, int]:
    """How many copies of each partition a cluster of ``brokers`` keeps, and how many must
    have a write before it is acknowledged: three and two from three brokers on (one broker
    may be lost without losing an acknowledged record or refusing a write), else one copy
    per broker and one to acknowledge."""
    if brokers >= 3:
        return {"replication_factor": 3, "min_insync_replicas": 2}
    return {"replication_factor": max(brokers, 1), "min_insync_replicas": 1}


class KafkaBus(Bus):
    """``instance``: a static member id for the consumers this bus makes (Kafka's static
    group membership, KIP-345): a node process restarted with the same id takes its
    partitions back at once instead of waiting out the dead member's session."""

    def __init__(self, bootstrap: str, client_id: str = "clearsim", default_partitions: int = 3,
                 instance: str | None = None):
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.default_partitions = default_partitions
        self.instance = instance
        self._admin: KafkaAdminClient | None = None

    def _fail(self, what: str, exc: Exception) -> BusError:
        return BusError(f"Kafka at {self.bootstrap}: {what}: {type(exc).__name__}: {exc}")

    def admin(self) -> KafkaAdminClient:
        if self._admin is None:
            try:
                self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap,
                                               client_id=f"{self.client_id}-admin",
                                               request_timeout_ms=_TIMEOUT_MS,
                                               reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS)
            except KafkaError as exc:
                raise self._fail("cannot connect", exc) from None
        return self._admin

    def replication(self) -> dict[str, int]:
        """Replicas per partition and in-sync replicas per write for the topics this bus
        creates, from how many brokers the cluster has."""
        try:
            brokers = len(self.admin().describe_cluster()["brokers"])
        except KafkaError as exc:
            raise self._fail("cannot describe the cluster", exc) from None
        return replication_settings(brokers)

    def ensure_topics(self, topics: list[str], partitions: int | None = None) -> None:
        admin = self.admin()
        try:
            existing = set(admin.list_topics())
            missing = [t for t in topics if t not in existing]
            copies = self.replication() if missing else {}
            wanted = [NewTopic(t, partitions or self.default_partitions,
                               copies["replication_factor"],
                               topic_configs=self.topic_configs(t, copies))
                      for t in missing]
            if wanted:
                try:
                    admin.create_topics(wanted, timeout_ms=_TIMEOUT_MS)
                except TopicAlreadyExistsError:
                    pass
            deadline = time.monotonic() + _TIMEOUT_MS / 1000
            while not set(topics) <= set(admin.list_topics()):
                if time.monotonic() > deadline:
                    raise BusError(f"Kafka at {self.bootstrap}: topics not visible in time")
                time.sleep(0.1)
        except KafkaError as exc:
            raise self._fail("cannot create topics", exc) from None

    @staticmethod
    def topic_configs(topic: str, copies: dict[str, int]) -> dict[str, str]:
        configs = {"min.insync.replicas": str(copies["min_insync_replicas"])}
        if is_table(topic):
            configs["cleanup.policy"] = "compact"
        return configs

    def producer(self) -> Producer:
        try:
            return KafkaBusProducer(KafkaProducer(
                bootstrap_servers=self.bootstrap, client_id=f"{self.client_id}-producer",
                acks="all", enable_idempotence=True, linger_ms=LINGER_MS,
                batch_size=BATCH_BYTES, delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
                reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
                request_timeout_ms=_TIMEOUT_MS, max_block_ms=_TIMEOUT_MS), self)
        except KafkaError as exc:
            raise self._fail("cannot create a producer", exc) from None

    def consumer(self, group: str, topics: list[str]) -> Consumer:
        try:
            consumer = KafkaConsumer(
                *topics, bootstrap_servers=self.bootstrap, group_id=group,
                client_id=f"{self.client_id}-{group}", enable_auto_commit=False,
                auto_offset_reset="earliest", request_timeout_ms=30000,
                session_timeout_ms=10000, heartbeat_interval_ms=1000,
                max_poll_interval_ms=300000, fetch_min_bytes=1,
                fetch_max_wait_ms=FETCH_WAIT_MS,
                reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
                group_instance_id=f"{group}/{self.instance}" if self.instance else None)
        except KafkaError as exc:
            raise self._fail(f"cannot create a consumer for {group}", exc) from None
        # Know the topics' partitions before joining: a group leader assigning without
        # that metadata hands out nothing and waits for the next metadata refresh.
        deadline = time.monotonic() + _TIMEOUT_MS / 1000
        for topic in topics:
            while not consumer.partitions_for_topic(topic):
                if time.monotonic() > deadline:
                    consumer.close(autocommit=False)
                    raise BusError(f"Kafka at {self.bootstrap}: no metadata for {topic}")
                time.sleep(0.1)
        return KafkaBusConsumer(consumer, self)

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None


class KafkaBusProducer(Producer):
    def __init__(self, producer: KafkaProducer, bus: KafkaBus):
        self._producer = producer
        self._bus = bus
        self._futures = []

    def send(self, topic, key, value, headers=()) -> None:
        try:
            msgid = dict(headers).get("msgid", b"").decode("utf-8", "replace")
            self._futures.append((msgid, self._producer.send(topic, value=value, key=key,
                                                             headers=list(headers))))
        except KafkaError as exc:
            raise self._bus._fail(f"send to {topic} failed", exc) from None

    def flush(self, timeout=None) -> None:
        futures, self._futures = self._futures, []
        try:
            self._producer.flush(FLUSH_TIMEOUT if timeout is None else timeout)
            for _, future in futures:
                future.get(timeout=_TIMEOUT_MS / 1000)
        except KafkaError as exc:
            failure = self._bus._fail("a send was not acknowledged", exc)
            if all(msgid for msgid, _ in futures):   # every record names itself
                failure.unacknowledged = frozenset(
                    msgid for msgid, future in futures
                    if not (future.is_done and future.succeeded()))
            raise failure from None

    def close(self) -> None:
        self._producer.close(timeout=5)


class KafkaBusConsumer(Consumer):
    def __init__(self, consumer: KafkaConsumer, bus: KafkaBus):
        self._consumer = consumer
        self._bus = bus
        self._positions: dict[TopicPartition, int] = {}

    def poll(self, timeout: float = 0.1, max_records: int = 500) -> list[Record]:
        try:
            batches = self._consumer.poll(timeout_ms=int(timeout * 1000),
                                          max_records=max_records)
        except KafkaError as exc:
            raise self._bus._fail("poll failed", exc) from None
        records = []
        for ktp in sorted(batches, key=lambda t: (t.topic, t.partition)):
            for r in batches[ktp]:
                records.append(Record(r.topic, r.partition, r.offset, r.key, r.value,
                                      tuple((k, v) for k, v in (r.headers or ()))))
            if batches[ktp]:
                self._positions[TopicPartition(ktp.topic, ktp.partition)] = \
                    batches[ktp][-1].offset + 1
        return records

    def commit(self, offsets=None) -> None:
        if offsets is None:   # only partitions still ours: a revoked one belongs to another
            owned = {(t.topic, t.partition) for t in self._consumer.assignment()}
            offsets = {tp: o for tp, o in self._positions.items()
                       if (tp.topic, tp.partition) in owned}
        if not offsets:
            return
        try:
            self._consumer.commit({KTopicPartition(tp.topic, tp.partition):
                                   OffsetAndMetadata(offset, "", -1)
                                   for tp, offset in offsets.items()})
        except KafkaError as exc:
            raise self._bus._fail("offset commit failed", exc) from None

    def assignment(self) -> list[TopicPartition]:
        return sorted((TopicPartition(t.topic, t.partition) for t in self._consumer.assignment()),
                      key=lambda tp: (tp.topic, tp.partition))

    def rewind(self) -> None:
        try:
            for ktp in self._consumer.assignment():
                offset = self._consumer.committed(ktp)
                if offset is None:
                    self._consumer.seek_to_beginning(ktp)
                else:
                    self._consumer.seek(ktp, offset)
                self._positions.pop(TopicPartition(ktp.topic, ktp.partition), None)
        except KafkaError as exc:
            raise self._bus._fail("rewind to the committed offsets failed", exc) from None

    def close(self) -> None:
        self._consumer.close(autocommit=False)

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

A client speaks SASL/SCRAM when it has credentials (``clearsim.bus.security``: from
``CLEARSIM_KAFKA_USER`` / ``CLEARSIM_KAFKA_PASSWORD`` / ``CLEARSIM_KAFKA_MECHANISM`` unless
given), PLAINTEXT otherwise. ``apply_plan`` creates a run's topics and grants its ACL plan,
as the broker's admin.
"""

from __future__ import annotations

import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition
from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType,
                         ACLResourcePatternType, NewTopic, ResourcePattern,
                         ResourcePatternFilter, ResourceType)
from kafka.errors import AuthorizationError, KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from clearsim.bus.base import Bus, BusError, Consumer, Producer, Record, TopicPartition
from clearsim.bus.security import AclPlan, Credentials, Grant, Operation, Resource, \
    credentials_from_env
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


class _FromEnvironment:
    """The default credentials of a ``KafkaBus``: whichever the environment names."""

    def __repr__(self) -> str:
        return "FROM_ENVIRONMENT"


FROM_ENVIRONMENT = _FromEnvironment()


def security_settings(credentials: Credentials | None) -> dict:
    """kafka-python's settings for a client speaking as ``credentials`` (SASL/SCRAM over
    PLAINTEXT), or for one speaking PLAINTEXT (None)."""
    if credentials is None:
        return {"security_protocol": "PLAINTEXT"}
    return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": credentials.mechanism,
            "sasl_plain_username": credentials.user,
            "sasl_plain_password": credentials.password}


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
    partitions back at once instead of waiting out the dead member's session.
    ``credentials``: whom its clients speak as (None: PLAINTEXT); by default, whom the
    environment names."""

    def __init__(self, bootstrap: str, client_id: str = "clearsim", default_partitions: int = 3,
                 instance: str | None = None,
                 credentials: Credentials | None | _FromEnvironment = FROM_ENVIRONMENT):
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.default_partitions = default_partitions
        self.instance = instance
        self.credentials = (credentials_from_env() if credentials is FROM_ENVIRONMENT
                            else credentials)
        self._security = security_settings(self.credentials)
        self._admin: KafkaAdminClient | None = None

    def _fail(self, what: str, exc: Exception) -> BusError:
        who = f" as {self.credentials.principal}" if self.credentials else ""
        return BusError(f"Kafka at {self.bootstrap}{who}: {what}: {type(exc).__name__}: {exc}")

    def admin(self) -> KafkaAdminClient:
        if self._admin is None:
            try:
                self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap,
                                               client_id=f"{self.client_id}-admin",
                                               request_timeout_ms=_TIMEOUT_MS,
                                               reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
                                               **self._security)
            except KafkaError as exc:
                raise self._fail(self._cannot_connect(), exc) from None
        return self._admin

    def _cannot_connect(self) -> str:
        if self.credentials is None:
            return "cannot connect"
        # A broker that refuses a SCRAM password closes the connection without a word the
        # client passes on: say what to check.
        return ("cannot connect (is the broker up, and does it know this user and password? "
                "a broker that refuses them closes the connection)")

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
        return KafkaBusProducer(self._kafka_producer(), self)

    def _kafka_producer(self) -> KafkaProducer:
        try:
            return KafkaProducer(
                bootstrap_servers=self.bootstrap, client_id=f"{self.client_id}-producer",
                acks="all", enable_idempotence=True, linger_ms=LINGER_MS,
                batch_size=BATCH_BYTES, delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
                reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
                request_timeout_ms=_TIMEOUT_MS, max_block_ms=_TIMEOUT_MS,
                **self._security)
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
                group_instance_id=f"{group}/{self.instance}" if self.instance else None,
                **self._security)
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

    # -- access control, as the broker's admin ---------------------------------------

    def grant(self, grants) -> None:
        """An ALLOW ACL for each of ``grants`` (``clearsim.bus.security.Grant``), from any
        host; one the cluster already holds stays as it is. Returns once they are in force."""
        grants = set(grants)
        acls = [ACL(principal=g.principal, host="*", operation=_OPERATIONS[g.operation],
                    permission_type=ACLPermissionType.ALLOW,
                    resource_pattern=ResourcePattern(_RESOURCES[g.resource], g.name))
                for g in sorted(grants)]
        if not acls:
            return
        try:
            result = self.admin().create_acls(acls)
        except KafkaError as exc:
            raise self._fail("cannot create ACLs", exc) from None
        if result["failed"]:
            raise BusError(f"Kafka at {self.bootstrap}: {len(result['failed'])} of "
                           f"{len(acls)} ACLs refused: {result['failed'][0]}")
        # The controller has them; the broker answering learns them from the metadata log a
        # moment later, and a client it serves before then would be refused.
        wanted = set(grants)
        deadline = time.monotonic() + _TIMEOUT_MS / 1000
        while not wanted <= self.granted():
            if time.monotonic() > deadline:
                raise BusError(f"Kafka at {self.bootstrap}: ACLs created but not in force "
                               "in time")
            time.sleep(0.1)

    def granted(self) -> set[Grant]:
        """The ALLOW ACLs on literal topic and group names the cluster holds, as grants
        (others, such as a DENY or a prefixed name, are not clearsim's and left out)."""
        names = {v: k for k, v in _RESOURCES.items()}
        operations = {v: k for k, v in _OPERATIONS.items()}
        found = set()
        for resource in _RESOURCES.values():
            every = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                              permission_type=ACLPermissionType.ALLOW,
                              resource_pattern=ResourcePatternFilter(
                                  resource, None, ACLResourcePatternType.LITERAL))
            try:
                acls, _ = self.admin().describe_acls(every)
            except KafkaError as exc:
                raise self._fail("cannot describe ACLs", exc) from None
            found |= {Grant(acl.principal.removeprefix("User:"), operations[acl.operation],
                            names[resource], acl.resource_pattern.resource_name)
                      for acl in acls if acl.operation in operations
                      and acl.principal.startswith("User:")}
        return found

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None


_OPERATIONS = {Operation.READ: ACLOperation.READ, Operation.WRITE: ACLOperation.WRITE,
               Operation.DESCRIBE: ACLOperation.DESCRIBE}
_RESOURCES = {Resource.TOPIC: ResourceType.TOPIC, Resource.GROUP: ResourceType.GROUP}


def apply_plan(bus: KafkaBus, plan: AclPlan, partitions: int | None = None) -> None:
    """Create the run's topics and grant its ACL plan. ``bus`` speaks as the broker's super
    user: nobody else may create topics or ACLs. Applying a plan again changes nothing."""
    bus.ensure_topics(list(plan.topics), partitions)
    bus.grant(plan.grants)


# A topic the broker refused a producer for want of an ACL is not tried again for this long
# (the refused record fails at once): each try would cost a new producer, and the ACLs of a
# run do not change by the second.
REFUSED_FOR = 30.0


class _Refused:
    """The future of a record not sent: its topic was refused a moment ago."""

    is_done = True

    def __init__(self, exception: KafkaError):
        self.exception = exception

    def succeeded(self) -> bool:
        return False

    def get(self, timeout=None):
        raise self.exception


class KafkaBusProducer(Producer):
    """A write the broker refuses for want of an ACL (a topic the producer may see but not
    write) is fatal to kafka-python's idempotent producer: it would fail every later send
    too. The producer is then replaced by a new one, so the refused records stay refused
    (unacknowledged, as the node's outbox expects) and the others go on; for
    ``REFUSED_FOR`` seconds records for that topic fail at once, without a try."""

    def __init__(self, producer: KafkaProducer, bus: KafkaBus):
        self._producer = producer
        self._bus = bus
        self._futures = []                      # (msgid, topic, future)
        self._refused: dict[str, tuple[float, KafkaError]] = {}   # topic -> (until, why)

    def send(self, topic, key, value, headers=()) -> None:
        msgid = dict(headers).get("msgid", b"").decode("utf-8", "replace")
        until, why = self._refused.get(topic, (0.0, None))
        if time.monotonic() < until:
            self._futures.append((msgid, topic, _Refused(why)))
            return
        try:
            self._futures.append((msgid, topic, self._producer.send(
                topic, value=value, key=key, headers=list(headers))))
        except KafkaError as exc:
            raise self._bus._fail(f"send to {topic} failed", exc) from None

    def flush(self, timeout=None) -> None:
        futures, self._futures = self._futures, []
        try:
            self._producer.flush(FLUSH_TIMEOUT if timeout is None else timeout)
            for _, _, future in futures:
                future.get(timeout=_TIMEOUT_MS / 1000)
        except KafkaError as exc:
            failure = self._bus._fail("a send was not acknowledged", exc)
            if all(msgid for msgid, _, _ in futures):   # every record names itself
                failure.unacknowledged = frozenset(
                    msgid for msgid, _, future in futures
                    if not (future.is_done and future.succeeded()))
            refused = [(topic, future.exception) for _, topic, future in futures
                       if not isinstance(future, _Refused) and future.is_done
                       and isinstance(future.exception, AuthorizationError)]
            if refused:
                # The records kafka-python aborted with the refused one carry its error,
                # which names the refused topic (its only argument): only that topic is
                # refused.
                until = time.monotonic() + REFUSED_FOR
                self._refused.update({topic: (until, why) for topic, why in refused
                                      if why.args == (topic,)})
                self._renew()
            raise failure from None

    def _renew(self) -> None:
        old, self._producer = self._producer, self._bus._kafka_producer()
        try:
            old.close(timeout=0)
        except KafkaError:   # it is done with: whatever it still held was refused
            pass

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

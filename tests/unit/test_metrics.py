"""The metrics machinery: the sensor's hooks and what the node loop tells them, the
Prometheus families they count into, the HTTP server, and the pieces the node packages'
collectors are built from (portable SQL, failures kept from a scrape)."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
import uuid
from datetime import date, datetime, timezone

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import (BigInteger, Column, Date, DateTime, Integer, MetaData, String, Table,
                        func, insert, select)

from clearsim import wire
from clearsim.bus.base import BusError, Producer
from clearsim.bus.memory import MemoryBus
from clearsim.codec import Codec
from clearsim.db import Database, processed_messages
from clearsim.errors import ClearsimError, ErrorCode, Rejection
from clearsim.messages import HUB, Outgoing, region_node, topic_for
from clearsim.metrics import (DAY, RETRY_REASONS, CountingSensor, FanOutSensor,
                              NodeCollector, NullSensor, PrometheusSensor, Sensor,
                              days_between, gauge, histogram, histogram_select,
                              seconds_between, serve_metrics, utc_day, yuan)
from clearsim.node import Node, encode_outgoing
from clearsim.testing.samples import sample_record

HOME = region_node("360400")
SENDER = region_node("110000")


def value(registry, name: str, **labels) -> float | None:
    return registry.get_sample_value(name, labels)


# -- the hooks ----------------------------------------------------------------------

HOOKS = {"on_node_start": ("n",), "on_fetched": ("n", 3), "on_batch_end": ("n", 3, True),
         "on_message_in": ("n", "K"), "on_message_out": ("n", "K"),
         "on_handled": ("n", "K", 0.5), "on_duplicate": ("n", "K"),
         "on_rejected": ("n", "CODE"), "on_dead_lettered": ("n", "CODE"),
         "on_retry": ("n", "refused", 2)}


def test_every_hook_is_a_no_op_on_the_base_sensor_and_the_other_sensors_take_it():
    hooks = {name for name in vars(Sensor) if name.startswith("on_")}
    assert hooks == set(HOOKS)
    counting = CountingSensor()
    for sensor in (Sensor(), NullSensor(), counting):
        for name, args in HOOKS.items():
            assert getattr(sensor, name)(*args) is None
    assert counting.counts == {"messages_in": 1, "messages_out": 1, "duplicates": 1,
                               "rejected": 1, "rejected.CODE": 1, "dead_lettered": 1}


def test_fan_out_passes_every_hook_to_every_sensor():
    class Recording(Sensor):
        def __init__(self):
            self.calls = []

    def recorder(name):
        def hook(self, *args):
            self.calls.append((name, args))
        return hook
    for name in HOOKS:
        setattr(Recording, name, recorder(name))
    first, second = Recording(), Recording()
    fan = FanOutSensor(first, second)
    for name, args in HOOKS.items():
        getattr(fan, name)(*args)
    assert first.calls == second.calls == list(HOOKS.items())


def test_the_prometheus_sensor_counts_each_family_by_its_labels():
    registry = CollectorRegistry()
    sensor = PrometheusSensor(registry)
    sensor.on_node_start("hub")
    assert [value(registry, "clearsim_retries_total", node="hub", reason=reason)
            for reason in RETRY_REASONS] == [0.0] * len(RETRY_REASONS)
    assert value(registry, "clearsim_consumer_lag_records", node="hub") == 0
    for _ in range(3):
        sensor.on_message_in("hub", "AdmitPatient")
    sensor.on_message_in("region-360400", "AdmitPatient")
    sensor.on_message_out("hub", "AdmissionVerified")
    sensor.on_duplicate("hub", "AdmitPatient")
    sensor.on_rejected("hub", "CLAIM_UNKNOWN")
    sensor.on_dead_lettered("hub", "CLAIM_UNKNOWN")
    sensor.on_retry("hub", "redelivered", 4)
    sensor.on_retry("hub", "released", 0)
    sensor.on_handled("hub", "AdmitPatient", 0.0003)
    sensor.on_handled("hub", "AdmitPatient", 0.2)
    assert value(registry, "clearsim_messages_received_total", node="hub",
                 kind="AdmitPatient") == 3
    assert value(registry, "clearsim_messages_received_total", node="region-360400",
                 kind="AdmitPatient") == 1
    assert value(registry, "clearsim_messages_sent_total", node="hub",
                 kind="AdmissionVerified") == 1
    assert value(registry, "clearsim_duplicates_absorbed_total", node="hub",
                 kind="AdmitPatient") == 1
    assert value(registry, "clearsim_messages_rejected_total", node="hub",
                 code="CLAIM_UNKNOWN") == 1
    assert value(registry, "clearsim_dead_lettered_total", node="hub",
                 code="CLAIM_UNKNOWN") == 1
    assert value(registry, "clearsim_retries_total", node="hub", reason="redelivered") == 4
    assert value(registry, "clearsim_retries_total", node="hub", reason="released") == 0
    handling = dict(node="hub", kind="AdmitPatient")
    assert value(registry, "clearsim_message_handling_seconds_count", **handling) == 2
    assert value(registry, "clearsim_message_handling_seconds_sum", **handling) == \
        pytest.approx(0.2003)
    assert value(registry, "clearsim_message_handling_seconds_bucket", le="0.0005",
                 **handling) == 1
    sensor.on_fetched("hub", 7)
    assert value(registry, "clearsim_consumer_lag_records", node="hub") == 7
    sensor.on_batch_end("hub", 7, committed=True)
    assert value(registry, "clearsim_consumer_lag_records", node="hub") == 0
    assert value(registry, "clearsim_records_fetched_total", node="hub") == 7


def test_a_sensor_of_one_node_counts_only_that_nodes_events():
    registry = CollectorRegistry()
    sensor = PrometheusSensor(registry, node="hub")
    sensor.on_node_start("region-360400")
    sensor.on_message_in("region-360400", "AdmitPatient")
    sensor.on_message_in("hub", "AdmitPatient")
    sensor.on_retry("region-360400", "refused")
    nodes = {s.labels.get("node") for family in registry.collect() for s in family.samples}
    assert nodes == {"hub"}


# -- what the node loop tells its sensor ---------------------------------------------

metadata = MetaData()
things = Table("things", metadata, Column("id", Integer, primary_key=True),
               Column("name", String(32), nullable=False))


@pytest.fixture(scope="module")
def codec():
    return Codec()


def body(codec: Codec, kind: str) -> dict:
    national = {k: v for k, v in sample_record(codec, kind).items() if k != "header"}
    return wire.translator(codec).inbound(kind, national)


class Flaky(MemoryBus):
    """The in-process bus whose producers' next flush fails while ``fail`` is set."""

    fail = False

    def producer(self) -> Producer:
        real, bus = super().producer(), self

        class Failing(Producer):
            def __init__(self):
                self.msgids = []

            def send(self, topic, key, value, headers=()):
                if bus.fail:
                    self.msgids.append(dict(headers)["msgid"].decode())
                else:
                    real.send(topic, key, value, headers)

            def flush(self, timeout=None):
                if bus.fail:
                    bus.fail, lost, self.msgids = False, frozenset(self.msgids), []
                    raise BusError("not acknowledged", lost)

            def close(self):
                return None
        return Failing()


class Loop:
    """A hub node with one handler, its sensor counting into its own registry; the test
    plays the regions. The handler notes the consumer lag the sensor shows while it runs
    and refuses claims named BAD."""

    def __init__(self, tmp_path, codec: Codec):
        self.codec = codec
        self.bus = Flaky(default_partitions=1)
        self.prefix = "t" + uuid.uuid4().hex[:10]
        self.registry = CollectorRegistry()
        self.lag_seen: list[float] = []
        self.db = Database(f"sqlite:///{tmp_path / 'hub.db'}", metadata)
        answer = body(codec, "AdmitPatient")

        def handler(msg, conn):
            self.lag_seen.append(self.value("clearsim_consumer_lag_records"))
            conn.execute(insert(things).values(name=msg.correlation_id))
            if msg.correlation_id.startswith("BAD"):
                raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID, "refused", "ipt_no")
            return [Outgoing("AdmitPatient", HOME, msg.correlation_id, answer)]
        self.node = Node(node_id=HUB, db=self.db, bus=self.bus, codec=codec,
                         handlers={"SubmitClaim": handler}, make_context=lambda c: c,
                         prefix=self.prefix, sensor=PrometheusSensor(self.registry))
        self.watch = self.bus.consumer("watch", [topic_for(HOME, self.prefix)])

    def value(self, name: str, **labels) -> float | None:
        return value(self.registry, name, node=HUB, **labels)

    def put(self, *envs) -> None:
        producer = MemoryBus.producer(self.bus)      # the test's own sends never fail
        for env in envs:
            producer.send(env.topic, env.key, env.value, env.headers)

    def submit(self, claim: str):
        return encode_outgoing(self.codec, SENDER, Outgoing(
            "SubmitClaim", HUB, claim, body(self.codec, "SubmitClaim")), self.prefix)

    def refusal(self, refers_to: str, code: ErrorCode):
        """What HOME answers when it refuses the bytes of the message ``refers_to``."""
        error = wire.error_out(Rejection(code, "unreadable", None, HOME), HOME)
        return encode_outgoing(self.codec, HOME, Outgoing("MessageRejected", HUB, "C-1", {
            "refers_to_msgid": refers_to, "original_transaction": "2401",
            "original_kind": "AdmitPatient", "error": error}), self.prefix)

    def answers(self) -> list[str]:
        return [dict(r.headers)["msgid"].decode() for r in self.watch.poll(timeout=0)]


@pytest.fixture
def loop(tmp_path, codec):
    loop = Loop(tmp_path, codec)
    loop.node.start()
    yield loop
    loop.node.stop()
    loop.db.dispose()


def test_the_loop_counts_messages_in_and_out_refusals_and_handling(loop):
    assert loop.value("clearsim_consumer_lag_records") == 0        # at zero from the start
    loop.put(loop.submit("C-1"), loop.submit("BAD-1"), loop.submit("C-2"))
    assert loop.node.step(timeout=0) == 3
    assert loop.value("clearsim_messages_received_total", kind="SubmitClaim") == 3
    assert loop.value("clearsim_messages_sent_total", kind="AdmitPatient") == 2
    assert loop.value("clearsim_messages_sent_total", kind="MessageRejected") == 1
    assert loop.value("clearsim_messages_rejected_total",
                      code="CLAIM_STATE_INVALID") == 1
    assert loop.value("clearsim_message_handling_seconds_count", kind="SubmitClaim") == 2
    with loop.db.engine.connect() as conn:
        outcomes = sorted(conn.execute(select(processed_messages.c.outcome)).scalars())
    assert outcomes == ["handled", "handled", "rejected"]
    assert loop.value("clearsim_records_fetched_total") == 3


def test_the_lag_is_the_batch_in_hand_until_it_is_committed(loop):
    loop.put(*(loop.submit(f"C-{n}") for n in range(4)))
    assert loop.node.step(timeout=0) == 4
    assert loop.lag_seen == [4, 4, 4, 4]                    # seen by each handler of it
    assert loop.value("clearsim_consumer_lag_records") == 0
    loop.put(loop.submit("C-9"))
    loop.node.step(timeout=0)
    assert loop.lag_seen[-1] == 1


def test_a_duplicate_is_absorbed_and_its_answers_counted_as_sent_again(loop):
    first = loop.submit("C-1")
    loop.put(first)
    loop.node.step(timeout=0)
    loop.put(first)
    loop.node.step(timeout=0)
    assert loop.value("clearsim_duplicates_absorbed_total", kind="SubmitClaim") == 1
    assert loop.value("clearsim_retries_total", reason="redelivered") == 1
    assert loop.value("clearsim_messages_sent_total", kind="AdmitPatient") == 2
    assert loop.value("clearsim_message_handling_seconds_count", kind="SubmitClaim") == 1


def test_rows_the_bus_did_not_acknowledge_are_counted_as_retries(loop):
    loop.bus.fail = True
    loop.put(loop.submit("C-1"), loop.submit("C-2"))
    with pytest.raises(BusError):
        loop.node.step(timeout=0)
    assert loop.value("clearsim_retries_total", reason="unacknowledged") == 2
    loop.node.step(timeout=0)
    assert len(loop.answers()) == 2
    assert loop.value("clearsim_messages_sent_total", kind="AdmitPatient") == 4


def test_a_row_refused_for_its_bytes_and_a_row_released_are_retries(loop):
    loop.put(loop.submit("C-1"))
    loop.node.step(timeout=0)
    [answer] = loop.answers()
    loop.put(loop.refusal(answer, ErrorCode.MESSAGE_MALFORMED))
    loop.node.step(timeout=0)
    assert loop.value("clearsim_retries_total", reason="refused") == 1
    assert loop.answers() == [answer]                        # the same row, sent again
    with loop.db.unit_of_work() as uow:                      # held while a fault lasts
        uow.hold(uow.outbox_row(answer).id, "schema-1")
        uow.commit()
    assert loop.node.release_held() == 1
    assert loop.value("clearsim_retries_total", reason="released") == 1
    loop.node.step(timeout=0)
    assert loop.answers() == [answer]


# -- serving --------------------------------------------------------------------------

def test_a_registry_is_served_on_a_free_port_until_closed():
    registry = CollectorRegistry()
    PrometheusSensor(registry).on_message_in("hub", "AdmitPatient")
    server = serve_metrics(0, registry, addr="127.0.0.1")
    try:
        assert server.port > 0
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        [sample] = [s for s in families["clearsim_messages_received"].samples
                    if s.name.endswith("_total")]
        assert sample.labels == {"node": "hub", "kind": "AdmitPatient"} and sample.value == 1
    finally:
        server.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)


# -- the collectors' pieces -------------------------------------------------------------

def test_money_is_exposed_in_yuan_from_exact_fen():
    assert yuan(1_024_500) == 10245.0
    assert yuan(1) == 0.01
    assert yuan(-151_500) == -1515.0


events = MetaData()
visits = Table("visits", events, Column("id", Integer, primary_key=True),
               Column("ward", String(8), nullable=False),
               Column("came", DateTime(timezone=True), nullable=False),
               Column("left", DateTime(timezone=True), nullable=True),
               Column("paid", Date, nullable=True),
               Column("fen", BigInteger, nullable=False))


def utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


@pytest.fixture
def visits_db(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'visits.db'}", events)
    db.create_all()
    with db.engine.begin() as conn:
        conn.execute(insert(visits), [
            {"ward": "A", "came": utc(2019, 3, 2, 23, 59, 59), "paid": date(2019, 5, 3),
             "left": utc(2019, 3, 3, 0, 0, 1, 500000), "fen": 795_000},
            {"ward": "A", "came": utc(2019, 3, 5, 8), "left": utc(2019, 3, 5, 8, 0, 30),
             "paid": date(2019, 3, 6), "fen": 643_500},
            {"ward": "B", "came": utc(2019, 3, 12, 8), "left": None, "paid": None,
             "fen": 229_500}])
    yield db
    db.dispose()


def test_days_seconds_and_days_of_timestamps_in_sql(visits_db):
    v = visits.c
    with visits_db.engine.connect() as conn:
        rows = conn.execute(select(utc_day(v.came), days_between(utc_day(v.came), v.paid),
                                   seconds_between(v.came, v.left)).order_by(v.id)).all()
    assert [tuple(row[:2]) for row in rows] == [(date(2019, 3, 2), 62), (date(2019, 3, 5), 1),
                                                (date(2019, 3, 12), None)]
    assert rows[0][2] == pytest.approx(2.5, abs=0.002)     # SQLite: to the millisecond
    assert rows[1][2] == pytest.approx(30, abs=0.002)
    assert rows[2][2] is None


def test_a_histogram_counts_each_group_cumulatively_and_leaves_nulls_out(visits_db):
    v = visits.c
    spent = seconds_between(v.came, v.left)
    with visits_db.engine.connect() as conn:
        rows = conn.execute(histogram_select(spent, (1.0, 10.0, 60.0), by=[v.ward])
                            .order_by(v.ward)).all()
        waited = conn.execute(histogram_select(
            days_between(utc_day(v.came), v.paid) * DAY, (DAY, 30 * DAY, 90 * DAY))).all()
    [(ward, count, total, *cumulative)] = rows           # ward B's one visit has no end
    assert (ward, count, cumulative) == ("A", 2, [0, 1, 2])
    assert total == pytest.approx(32.5, abs=0.004)
    assert [tuple(r) for r in waited] == [(2, 63 * DAY, 1, 1, 2)]


def test_a_family_that_cannot_be_read_is_left_out_and_the_rest_served(visits_db, caplog):
    class Stub:
        node_id = "hospitals-360400"
        db = visits_db

    def owed(conn):
        return conn.execute(select(visits.c.ward, func.sum(visits.c.fen))
                            .group_by(visits.c.ward).order_by(visits.c.ward)).all()

    def broken(conn):
        missing = Table("missing", MetaData(), Column("x", Integer))
        return conn.execute(select(missing.c.x)).all()

    collector = NodeCollector(Stub(), (
        histogram("clearsim_broken_seconds", "A read that fails", (), (1.0,), broken),
        gauge("clearsim_owed_yuan", "Owed", ("ward",), lambda conn: [
            (ward, yuan(fen)) for ward, fen in owed(conn)])))
    registry = CollectorRegistry()
    registry.register(collector)
    with caplog.at_level(logging.WARNING, logger="clearsim.metrics"):
        families = {f.name: f for f in registry.collect()}
    assert set(families) == {"clearsim_outbox_messages", "clearsim_owed_yuan"}
    assert [(s.labels["state"], s.value) for s in families["clearsim_outbox_messages"].samples
            ] == [("unsent", 0), ("held", 0)]
    assert [(s.labels, s.value) for s in families["clearsim_owed_yuan"].samples] == [
        ({"node": "hospitals-360400", "ward": "A"}, 14385.0),
        ({"node": "hospitals-360400", "ward": "B"}, 2295.0)]
    assert "clearsim_broken_seconds not read" in caplog.text


def test_registering_a_collector_reads_nothing():
    class Absent:
        node_id = "hub"
        db = None          # any read would fail: describe() names the families alone

    registry = CollectorRegistry()
    registry.register(NodeCollector(Absent(), ()))
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(NodeCollector(Absent(), ()))

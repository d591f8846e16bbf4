"""One node on a real bus: redelivery, modified duplicates, unknown and incompatible schemas.

Every test runs on the in-process bus and on a real Kafka broker (one shared suite). The
node under test is the hospital node of Beijing; the test plays the simulated outside world
and reads what the node sent to its region platform's topic.
"""

from __future__ import annotations

import copy
import json
import os
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from clearsim import bodies
from clearsim.bus import connect
from clearsim.codec import Codec
from clearsim.db import rejections
from clearsim.domain.settlement import ChargeItem
from clearsim.messages import SIM, Outgoing, hospitals_node
from clearsim.metrics import CountingSensor
from clearsim.node import encode_outgoing
from hospital_node import node as hospital_wiring
from hospital_node import tables as hospital_tables
from hospital_node.handlers import HospitalsConfig

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "clearsim" / "schemas"
REGION = "110000"
WHEN = datetime(2019, 3, 2, tzinfo=timezone.utc)


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def bus(request):
    url = None if request.param == "memory" else request.getfixturevalue("kafka_bootstrap")
    bus = connect(url, default_partitions=3)
    yield bus
    bus.close()


@pytest.fixture
def node(bus, tmp_path, topic_prefix):
    sensor = CountingSensor()
    node = hospital_wiring.build(
        HospitalsConfig(region=REGION, hospitals={"H-BJ-3": 3}),
        db_url=f"sqlite:///{tmp_path / 'hospitals.db'}", bus=bus, codec=Codec(),
        prefix=topic_prefix, sensor=sensor)
    node.sensor_counts = sensor.counts
    node.start()
    yield node
    node.stop()


def submit(claim_id: str, amount: str = "100.00") -> Outgoing:
    return Outgoing("SubmitClaim", hospitals_node(REGION), claim_id, {
        "admission_no": claim_id, "person_id": "P-1", "insurance_code": "390",
        "insuring_region": "360400", "hospital": "H-BJ-3", "admitted_at": WHEN,
        "items": bodies.charge_lines([ChargeItem("D100", int(Decimal(amount) * 100))])},
        sim_time=WHEN)


def send(bus, node, value: bytes, msgid: str, kind: str, claim_id: str) -> None:
    producer = bus.producer()
    producer.send(node.topic, claim_id.encode(), value,
                  (("msgid", msgid.encode()), ("kind", kind.encode()),
                   ("sender", SIM.encode()), ("correlation_id", claim_id.encode())))
    producer.flush()
    producer.close()


def pump(node, until, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not until():
        assert time.monotonic() < deadline, "node did not get there in time"
        node.step(timeout=0.1)


def claims_in(node) -> list[dict]:
    with node.db.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(hospital_tables.claims)).mappings()]


def refusals(node) -> list[dict]:
    with node.db.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(rejections)).mappings()]


def sent_to_platform(bus, node, expect: int, seconds: float = 60.0) -> list:
    """What the node published on its region platform's topic (read by a fresh group)."""
    topic = node.topic.replace(".hospitals.", ".region.")
    consumer = bus.consumer(group=f"{topic}.observer.{time.monotonic_ns()}", topics=[topic])
    got = []
    deadline = time.monotonic() + seconds
    while len(got) < expect and time.monotonic() < deadline:
        got += consumer.poll(timeout=0.2)
    time.sleep(0.5)
    got += consumer.poll(timeout=0.5)
    consumer.close()
    return got


def test_a_redelivered_message_has_no_second_effect_and_its_answer_is_sent_again(bus, node):
    env = encode_outgoing(node.codec, SIM, submit("C-R1"), node.prefix)
    send(bus, node, env.value, env.msgid, "SubmitClaim", "C-R1")
    pump(node, lambda: len(claims_in(node)) == 1)
    send(bus, node, env.value, env.msgid, "SubmitClaim", "C-R1")   # the bus delivers it again
    pump(node, lambda: node.sensor_counts["duplicates"] == 1)
    assert len(claims_in(node)) == 1
    out = sent_to_platform(bus, node, expect=2)
    assert [dict(r.headers)["kind"] for r in out] == [b"AdmitPatient", b"AdmitPatient"]
    assert len({dict(r.headers)["msgid"] for r in out}) == 1   # the same answer, again


def test_the_same_id_with_another_payload_is_refused(bus, node):
    first = encode_outgoing(node.codec, SIM, submit("C-M1", "100.00"), node.prefix)
    send(bus, node, first.value, first.msgid, "SubmitClaim", "C-M1")
    pump(node, lambda: len(claims_in(node)) == 1)
    _, record = node.codec.decode(first.value)
    changed = copy.deepcopy(record)
    changed["items"][0]["det_item_fee_sumamt"] = Decimal("999.00")
    send(bus, node, node.codec.encode("SubmitClaim", changed), first.msgid, "SubmitClaim",
         "C-M1")
    pump(node, lambda: len(refusals(node)) == 1)
    refused = refusals(node)[0]
    assert refused["code"] == "DUPLICATE_ID_MODIFIED"
    assert refused["field"] == "msgid" and refused["node"] == node.node_id
    assert [c["total"] for c in claims_in(node)] == [10000]   # the first payload stands


def _broken_submit_schema() -> dict:
    """SubmitClaim as a region with another reading of the interface writes it: psn_no as
    a number instead of a string."""
    schema = json.loads((SCHEMA_DIR / "SubmitClaim.avsc").read_text())
    for field in schema["fields"]:
        if field["name"] == "psn_no":
            field["type"] = "long"
    schema["version"] = 99
    return schema


def test_unknown_and_incompatible_schemas_are_refused_and_the_node_keeps_consuming(
        bus, tmp_path, topic_prefix):
    broken = _broken_submit_schema()
    sensor = CountingSensor()
    node = hospital_wiring.build(
        HospitalsConfig(region=REGION, hospitals={"H-BJ-3": 3}),
        db_url=f"sqlite:///{tmp_path / 'h.db'}", bus=bus,
        codec=Codec(known_writers=[broken]), prefix=topic_prefix, sensor=sensor)
    node.start()
    try:
        # 1. a fingerprint nobody registered
        unknown = b"\xc3\x01" + os.urandom(8) + b"\x00"
        send(bus, node, unknown, "sim-unknown-1", "SubmitClaim", "C-U1")
        # 2. a known writer schema that cannot be read as this node's SubmitClaim
        writer = Codec(writer_overrides={"SubmitClaim": broken}, known_writers=[broken])
        header_and_body = writer.decode(encode_outgoing(Codec(), SIM, submit("C-I1"),
                                                        topic_prefix).value)[1]
        header_and_body["psn_no"] = 12345
        send(bus, node, writer.encode("SubmitClaim", header_and_body), "sim-incompat-1",
             "SubmitClaim", "C-I1")
        # 3. a good message behind them
        good = encode_outgoing(node.codec, SIM, submit("C-G1"), topic_prefix)
        send(bus, node, good.value, good.msgid, "SubmitClaim", "C-G1")
        pump(node, lambda: len(claims_in(node)) == 1 and len(refusals(node)) == 2)
        by_claim = {r["correlation_id"]: r for r in refusals(node)}
        assert by_claim["C-U1"]["code"] == "SCHEMA_UNKNOWN"
        assert by_claim["C-U1"]["field"] == "fingerprint"
        assert by_claim["C-I1"]["code"] == "SCHEMA_INCOMPATIBLE"
        assert by_claim["C-I1"]["field"] == "psn_no"
        assert "v99" in by_claim["C-I1"]["message"]
        assert [c["claim_id"] for c in claims_in(node)] == ["C-G1"]
    finally:
        node.stop()


def test_a_batch_the_database_could_not_take_is_handled_on_the_next_step(bus, node):
    """The database fails once: the step raises, nothing is committed, and the same
    records are handled by the next step; none is skipped, none is set aside."""
    from sqlalchemy.exc import OperationalError

    real = node.db.unit_of_work
    failures = []

    def flaky():
        if not failures:
            failures.append(1)
            raise OperationalError("BEGIN", {}, Exception("database is restarting"))
        return real()

    node.db.unit_of_work = flaky
    for claim in ("C-F1", "C-F2"):
        env = encode_outgoing(node.codec, SIM, submit(claim), node.prefix)
        send(bus, node, env.value, env.msgid, "SubmitClaim", claim)
    deadline = time.monotonic() + 60
    while not failures:
        assert time.monotonic() < deadline
        try:
            node.step(timeout=0.1)
        except OperationalError:
            pass
    pump(node, lambda: len(claims_in(node)) == 2)
    assert refusals(node) == []
    assert sorted(c["claim_id"] for c in claims_in(node)) == ["C-F1", "C-F2"]

"""One node on the in-process bus: refusals of a message's bytes or interface.

The receiver refuses a wrong ``infno`` or an empty required identifier (also from the
runner, ``sim``) without consuming the message, so the same msgid, repaired, is handled;
it keeps later messages of the claim from that sender aside until the refused one comes
again. The sender sends a refused row again, then holds it while a ``schema`` fault says
so, or falls back: its claim goes to manual reimbursement. The node under test is the
hospital node of Beijing; the test plays the outside world and its region platform.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select

from clearsim import bodies
from clearsim.bus import connect
from clearsim.codec import Codec
from clearsim.db import awaited, outbox, processed_messages, rejections, set_aside
from clearsim.domain.settlement import ChargeItem
from clearsim.faults import FaultPlan, parse_fault, parse_fault_arg
from clearsim.messages import SIM, Outgoing, hospitals_node, region_node
from clearsim.node import encode_outgoing
from hospital_node import node as hospital_wiring
from hospital_node import tables as hospital_tables
from hospital_node.handlers import HospitalsConfig

REGION = "110000"
PLATFORM = region_node(REGION)
WHEN = datetime(2019, 3, 2, tzinfo=timezone.utc)


@pytest.fixture
def bus():
    bus = connect(None, default_partitions=3)
    yield bus
    bus.close()


def build(bus, tmp_path, prefix, faults: FaultPlan | None = None):
    node = hospital_wiring.build(
        HospitalsConfig(region=REGION, hospitals={"H-BJ-3": 3}),
        db_url=f"sqlite:///{tmp_path / 'hospitals.db'}", bus=bus, codec=Codec(),
        prefix=prefix, faults=faults)
    node.start()
    return node


@pytest.fixture
def node(bus, tmp_path, topic_prefix):
    node = build(bus, tmp_path, topic_prefix)
    yield node
    node.stop()


def submit(claim_id: str) -> Outgoing:
    return Outgoing("SubmitClaim", hospitals_node(REGION), claim_id, {
        "admission_no": claim_id, "person_id": "P-1", "insurance_code": "390",
        "insuring_region": "360400", "hospital": "H-BJ-3", "admitted_at": WHEN,
        "items": bodies.charge_lines([ChargeItem("D100", 10000)])}, sim_time=WHEN)


def send(bus, node, value: bytes, msgid: str, kind: str, claim_id: str,
         sender: str = SIM) -> None:
    producer = bus.producer()
    producer.send(node.topic, claim_id.encode(), value,
                  (("msgid", msgid.encode()), ("kind", kind.encode()),
                   ("sender", sender.encode()), ("correlation_id", claim_id.encode())))
    producer.flush()
    producer.close()


def send_out(bus, node, sender: str, out: Outgoing, change=None) -> str:
    """Send ``out`` from ``sender`` (its bytes changed by ``change`` first); its msgid."""
    env = encode_outgoing(node.codec, sender, out, node.prefix, sim_time=WHEN)
    value = env.value if change is None else change(env.value)
    send(bus, node, value, env.msgid, out.kind, out.correlation_id, sender)
    return env.msgid


def pump(node, until, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not until():
        assert time.monotonic() < deadline, "node did not get there in time"
        node.step(timeout=0.05)


def rows(node, table) -> list[dict]:
    with node.db.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table)).mappings()]


def claim_state(node, claim_id: str) -> str | None:
    found = [c["state"] for c in rows(node, hospital_tables.claims) if c["claim_id"] == claim_id]
    return found[0] if found else None


def outbox_of(node, kind: str) -> list[dict]:
    return [r for r in rows(node, outbox) if r["kind"] == kind]


def sent_to(bus, node, receiver: str, expect: int, seconds: float = 10.0) -> list:
    """What the node published on ``receiver``'s topic (read by a fresh group)."""
    topic = node.topic.replace(f"hospitals.{REGION}", receiver.replace("-", "."))
    consumer = bus.consumer(group=f"{topic}.observer.{time.monotonic_ns()}", topics=[topic])
    got = []
    deadline = time.monotonic() + seconds
    while len(got) < expect and time.monotonic() < deadline:
        got += consumer.poll(timeout=0.1)
    consumer.close()
    return got


def headers(record) -> dict:
    return {k: v.decode() for k, v in record.headers}


# -- the receiver ------------------------------------------------------------------------

def with_header(codec: Codec, **changes):
    def change(value: bytes) -> bytes:
        name, record = codec.read(value)
        record["header"].update(changes)
        return codec.encode(name, record)
    return change


def with_field(codec: Codec, field: str, value):
    def change(data: bytes) -> bytes:
        name, record = codec.read(data)
        record[field] = value
        return codec.encode(name, record)
    return change


@pytest.mark.parametrize("what,code,field", [
    ("infno", "INFNO_MISMATCH", "infno"), ("empty", "FIELD_REQUIRED", "psn_no")])
def test_the_runner_s_message_is_refused_unconsumed_and_handled_once_repaired(
        bus, node, what, code, field):
    env = encode_outgoing(node.codec, SIM, submit("C-1"), node.prefix)
    change = (with_header(node.codec, infno="2401", infver=2) if what == "infno"
              else with_field(node.codec, "psn_no", ""))
    send(bus, node, change(env.value), env.msgid, "SubmitClaim", "C-1")
    pump(node, lambda: len(rows(node, rejections)) == 1)
    [refusal] = rows(node, rejections)
    assert (refusal["code"], refusal["field"], refusal["msgid"]) == (code, field, env.msgid)
    assert "v1" in refusal["message"]
    if what == "infno":
        assert "9001" in refusal["message"] and "2401" in refusal["message"]
        assert "v2" in refusal["message"]
    assert claim_state(node, "C-1") is None
    assert rows(node, processed_messages) == []          # not consumed
    send(bus, node, env.value, env.msgid, "SubmitClaim", "C-1")   # the same msgid, repaired
    pump(node, lambda: claim_state(node, "C-1") == "admitting")
    assert [r["msgid"] for r in rows(node, processed_messages)] == [env.msgid]


def admission_answered(claim_id: str) -> Outgoing:
    return Outgoing("AdmissionAnswered", hospitals_node(REGION), claim_id, {
        "admission_no": claim_id, "visit_id": f"M-{claim_id}", "result_code": 0,
        "direct": True, "filing_type": "referral", "error": None}, sim_time=WHEN)


def charges_answered(claim_id: str) -> Outgoing:
    return Outgoing("ChargesAnswered", hospitals_node(REGION), claim_id, {
        "admission_no": claim_id, "visit_id": f"M-{claim_id}", "result_code": 0,
        "items": [{"line_no": "1", "catalog_code": "D100", "item_class": "A",
                   "amount": 10000, "b_selfpay_share": None}], "error": None},
        sim_time=WHEN)


def corrupt(value: bytes) -> bytes:
    return value[:4] + bytes([value[4] ^ 0xFF]) + value[5:]      # in the fingerprint


def test_later_messages_of_a_claim_wait_for_the_one_refused(bus, node):
    send_out(bus, node, SIM, submit("C-2"))
    pump(node, lambda: claim_state(node, "C-2") == "admitting")
    good = encode_outgoing(node.codec, PLATFORM, admission_answered("C-2"), node.prefix)
    send(bus, node, corrupt(good.value), good.msgid, "AdmissionAnswered", "C-2", PLATFORM)
    send_out(bus, node, PLATFORM, charges_answered("C-2"))
    pump(node, lambda: len(rows(node, set_aside)) == 1)
    [refusal] = rows(node, rejections)
    assert refusal["code"] == "SCHEMA_UNKNOWN" and refusal["msgid"] == good.msgid
    assert claim_state(node, "C-2") == "admitting"     # ChargesAnswered was not refused
    [wait] = rows(node, awaited)
    assert (wait["sender"], wait["msgid"]) == (PLATFORM, good.msgid)
    answers = [r for r in sent_to(bus, node, PLATFORM, 2)
               if headers(r)["kind"] == "MessageRejected"]
    assert len(answers) == 1
    send(bus, node, good.value, good.msgid, "AdmissionAnswered", "C-2", PLATFORM)  # again
    pump(node, lambda: claim_state(node, "C-2") == "settling")
    assert rows(node, set_aside) == [] and rows(node, awaited) == []
    assert len(rows(node, rejections)) == 1


def refusal_of(node, row: dict, code: str = "SCHEMA_INCOMPATIBLE") -> Outgoing:
    return Outgoing("MessageRejected", hospitals_node(REGION), row["correlation_id"], {
        "refers_to_msgid": row["msgid"], "original_transaction": "2401",
        "original_kind": row["kind"],
        "error": {"code": code, "message": "AdmitPatient written with v2 cannot be read as "
                  "v1: field 'psn_no' ...", "field": "psn_no", "node": PLATFORM}},
        sim_time=WHEN)


def test_the_sender_sends_a_refused_row_again_then_falls_back_to_manual(bus, node):
    node.resends = 2
    send_out(bus, node, SIM, submit("C-3"))
    pump(node, lambda: len(outbox_of(node, "AdmitPatient")) == 1)
    [row] = outbox_of(node, "AdmitPatient")
    send_out(bus, node, PLATFORM, refusal_of(node, row))
    pump(node, lambda: outbox_of(node, "AdmitPatient")[0]["resent"] == 1)
    sent = [headers(r)["msgid"] for r in sent_to(bus, node, PLATFORM, 2)]
    assert sent == [row["msgid"], row["msgid"]]            # the same message, again
    send_out(bus, node, PLATFORM, refusal_of(node, row))
    pump(node, lambda: outbox_of(node, "AdmitPatient")[0]["resent"] == 2)
    assert claim_state(node, "C-3") == "admitting"
    send_out(bus, node, PLATFORM, refusal_of(node, row))   # no resend left: fall back
    pump(node, lambda: claim_state(node, "C-3") == "manual")
    [manual] = outbox_of(node, "ReimburseManually")
    assert manual["topic"].endswith("region.360400")
    [told] = outbox_of(node, "ClaimRejected")
    assert told["topic"].endswith(f"region.{REGION}")
    [claim] = [c for c in rows(node, hospital_tables.claims) if c["claim_id"] == "C-3"]
    assert (claim["fund_pay"], claim["personal_pay"]) == (0, claim["total"])
    assert claim["error"]["code"] == "SCHEMA_INCOMPATIBLE"


def test_another_refusal_fails_the_claim_as_before(bus, node):
    send_out(bus, node, SIM, submit("C-5"))
    pump(node, lambda: len(outbox_of(node, "AdmitPatient")) == 1)
    [row] = outbox_of(node, "AdmitPatient")
    send_out(bus, node, PLATFORM, refusal_of(node, row, code="HOSPITAL_UNKNOWN"))
    pump(node, lambda: claim_state(node, "C-5") == "rejected")
    assert outbox_of(node, "AdmitPatient")[0]["resent"] == 0
    assert outbox_of(node, "ReimburseManually") == []


def test_a_held_row_is_sent_again_once_the_schema_fault_is_over(bus, tmp_path, topic_prefix):
    fault = parse_fault(parse_fault_arg(
        "schema:node=hospitals-110000,message=AdmitPatient,fallback=hold,until=2019-03-05"),
        "--fault", index=0, seed=1, nodes=["hospitals-110000", PLATFORM])
    plan = FaultPlan([fault])
    plan.today = date(2019, 3, 2)
    node = build(bus, tmp_path, topic_prefix, plan)
    try:
        node.resends = 0
        send_out(bus, node, SIM, submit("C-4"))
        pump(node, lambda: len(outbox_of(node, "AdmitPatient")) == 1)
        [row] = outbox_of(node, "AdmitPatient")
        send_out(bus, node, PLATFORM, refusal_of(node, row))
        pump(node, lambda: outbox_of(node, "AdmitPatient")[0]["held_by"] == fault.id)
        assert claim_state(node, "C-4") == "admitting"      # held, not failed
        assert node.release_held() == 0                      # the fault is still on
        plan.today = date(2019, 3, 5)
        assert node.release_held() == 1
        pump(node, lambda: outbox_of(node, "AdmitPatient")[0]["sent_at"] is not None)
        sent = [headers(r)["msgid"] for r in sent_to(bus, node, PLATFORM, 2)]
        assert sent == [row["msgid"], row["msgid"]]
        assert outbox_of(node, "AdmitPatient")[0]["held_by"] is None
        events = [(e.what, e.claim_id) for e in plan.events() if e.what != "detected"]
        assert events == [("held", "C-4"), ("released", "C-4")]
    finally:
        node.stop()

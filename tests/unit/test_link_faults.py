"""Transport faults on the wire and the hospitals' retries, one piece at a time.

The runs that put them together (every claim through every party, the money against
``clearsim settle``) are in tests/integration/test_transport_faults.py.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from clearsim import bodies
from clearsim.bus.base import BusError
from clearsim.bus.memory import MemoryBus
from clearsim.codec import Codec
from clearsim.db import has_rejection
from clearsim.domain.settlement import ChargeItem
from clearsim.faults import FaultPlan, parse_fault, parse_fault_arg, retry_budget_ms, \
    retry_waits_ms
from clearsim.messages import SIM, Outgoing, topic_for
from clearsim.node import encode_outgoing, record_headers
from hospital_node import node as hospital_wiring
from hospital_node import queries as hospital_queries
from hospital_node.handlers import HospitalsConfig
from testbed.chaos import FaultyBus, header
from testbed.runner import retry_budget

PREFIX = "t"
TODAY = date(2019, 3, 4)
WHEN = datetime(2019, 3, 4, 8, tzinfo=timezone.utc)
SENDER = "region-110000"


@pytest.fixture(scope="module")
def codec():
    return Codec()


def plan_of(*texts: str) -> FaultPlan:
    plan = FaultPlan([parse_fault(parse_fault_arg(t), t, index=i, seed=7)
                      for i, t in enumerate(texts)])
    plan.today = TODAY
    return plan


def faulty(plan: FaultPlan, codec: Codec, sender: str = SENDER):
    bus = MemoryBus(default_partitions=1)    # one partition: the topic's order is visible
    return bus, FaultyBus(bus, plan, sender, codec, PREFIX).producer()


def send(producer, claim: str, n: int, to: str = "hub", kind: str = "ClaimSettled") -> str:
    msgid = f"{SENDER}-{claim}-{n}"
    producer.send(topic_for(to, PREFIX), claim.encode(), f"{claim}/{n}".encode(),
                  record_headers(msgid, kind, SENDER, claim))
    return msgid


def arrived(bus: MemoryBus, to: str = "hub") -> list[str]:
    """Everything on ``to``'s topic so far, in order."""
    consumer = bus.consumer(f"watch-{to}", [topic_for(to, PREFIX)])
    try:
        return [r.value.decode("utf-8", "replace")
                for r in consumer.poll(timeout=0, max_records=1000)]
    finally:
        consumer.close()


def injected(plan: FaultPlan, fault_id: str) -> list:
    return [e for e in plan.events(fault_id) if e.what == "injected"]


# -- the link's faults ---------------------------------------------------------------

def test_reorder_lets_claims_overtake_one_another_but_keeps_each_claims_order(codec):
    plan = plan_of(f"reorder:link={SENDER}->hub")
    bus, producer = faulty(plan, codec)
    for claim, n in [("A", 1), ("B", 1), ("A", 2), ("C", 1), ("B", 2), ("C", 2)]:
        send(producer, claim, n)
    producer.flush()
    got = arrived(bus)
    assert sorted(got) == ["A/1", "A/2", "B/1", "B/2", "C/1", "C/2"]
    assert got != ["A/1", "B/1", "A/2", "C/1", "B/2", "C/2"]
    for claim in "ABC":
        assert [v for v in got if v.startswith(claim)] == [f"{claim}/1", f"{claim}/2"]
    assert {e.claim_id for e in injected(plan, "reorder-1")} <= {"A", "B", "C"}
    assert injected(plan, "reorder-1")


def test_a_drop_is_not_acknowledged_and_holds_back_its_claims_later_records(codec):
    plan = plan_of(f"drop:link={SENDER}->hub,rate=0.5")
    fault = plan.faults[0]
    # A claim whose first record is dropped on its first attempt and whose second is not.
    claim = next(c for c in (f"K{i}" for i in range(200))
                 if fault.draws(c, "ClaimSettled", "hub", 1)
                 and not fault.draws(c, "SettlementConfirmed", "hub", 1))
    bus, producer = faulty(plan, codec)
    first = send(producer, claim, 1)
    send(producer, claim, 2, kind="SettlementConfirmed")
    kept = send(producer, "SAFE", 1, to="region-360400")
    with pytest.raises(BusError) as failed:
        producer.flush()
    assert first in failed.value.unacknowledged
    assert kept not in failed.value.unacknowledged
    # Neither record of the claim reached the hub: the second is never ahead of the first.
    assert arrived(bus) == []
    assert arrived(bus, "region-360400") == ["SAFE/1"]
    assert [e.claim_id for e in injected(plan, "drop-1")] == [claim]


def test_a_duplicate_is_sent_twice_the_first_time_only(codec):
    plan = plan_of(f"duplicate:link={SENDER}->*")
    bus, producer = faulty(plan, codec)
    send(producer, "A", 1)
    producer.flush()
    send(producer, "A", 1)      # the outbox sends the same record again
    producer.flush()
    assert arrived(bus) == ["A/1"] * 3
    assert len(injected(plan, "duplicate-1")) == 1


def test_a_delayed_record_is_sent_before_flush_returns(codec):
    plan = plan_of(f"delay:link={SENDER}->hub,ms=20,jitter_ms=0")
    bus, producer = faulty(plan, codec)
    send(producer, "A", 1)
    assert arrived(bus) == []           # held by the link
    producer.flush()
    assert arrived(bus) == ["A/1"]
    [event] = injected(plan, "delay-1")
    assert "20 ms late" in event.detail


def test_a_partition_cuts_a_region_and_the_hub_in_both_directions_only(codec):
    plan = plan_of("partition:node=region-360400,from=2019-03-04,until=2019-03-05")
    bus, region = faulty(plan, codec, sender="region-360400")
    send(region, "A", 1)                                   # -> hub
    send(region, "B", 1, to="hospitals-360400")            # its own hospitals: unaffected
    with pytest.raises(BusError):
        region.flush()
    assert arrived(bus) == [] and arrived(bus, "hospitals-360400") == ["B/1"]
    hub = FaultyBus(bus, plan, "hub", codec, PREFIX).producer()
    hub.send(topic_for("region-360400", PREFIX), b"C", b"C/1",
             record_headers("hub-C-1", "AdmitPatient", "hub", "C"))
    with pytest.raises(BusError):
        hub.flush()
    plan.today = date(2019, 3, 5)                          # healed
    send(region, "A", 1)
    region.flush()
    assert arrived(bus) == ["A/1"]


# -- the retry schedule ------------------------------------------------------------------

def test_the_retry_schedule_is_exponential_capped_jittered_and_reproducible():
    plan = plan_of("outage:node=hub,attempts=5,initial_ms=100,max_ms=500,jitter_ms=50")
    fault = plan.faults[0]
    waits = retry_waits_ms(fault, "C-1", "AdmitPatient")
    assert len(waits) == 5
    for wait, base in zip(waits, [100, 200, 400, 500, 500]):
        assert base <= wait < base + 50
    assert waits == retry_waits_ms(fault, "C-1", "AdmitPatient")
    assert sum(waits) <= retry_budget_ms(fault) == 1700 + 5 * 50
    assert retry_budget(fault) == retry_budget_ms(fault) / 1000


# -- the hospitals' retries and fallback ----------------------------------------------------

class Clock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def submit(bus: MemoryBus, codec: Codec, claim: str, sent_at: datetime) -> None:
    env = encode_outgoing(codec, SIM, Outgoing("SubmitClaim", "hospitals-110000", claim, {
        "admission_no": claim, "person_id": "P-JJ-001", "insurance_code": "390",
        "insuring_region": "360400", "hospital": "H-BJ-3", "admitted_at": WHEN,
        "items": bodies.charge_lines([ChargeItem("D100", 2_000_000)])}), PREFIX,
        sim_time=WHEN, now=sent_at)
    bus.producer().send(env.topic, env.key, env.value, env.headers)


def hospitals(tmp_path, bus: MemoryBus, codec: Codec, plan: FaultPlan, clock):
    """Beijing's hospitals node on its own SQLite file, with the run's faults and a clock."""
    return hospital_wiring.build(HospitalsConfig("110000", {"H-BJ-3": 3}),
                                 db_url=f"sqlite:///{tmp_path / 'h.db'}", bus=bus,
                                 codec=codec, prefix=PREFIX, faults=plan, clock=clock)


def test_an_unanswered_admission_is_resent_then_the_patient_goes_manual(tmp_path, codec):
    plan = plan_of("outage:node=region-360400,fallback=manual,attempts=3,initial_ms=100,"
                   "max_ms=150,jitter_ms=0")
    clock = Clock(WHEN)
    bus = MemoryBus()
    node = hospitals(tmp_path, bus, codec, plan, clock)
    node.start()
    platform = bus.consumer("watch", [topic_for("region-110000", PREFIX)])
    home = bus.consumer("watch", [topic_for("region-360400", PREFIX)])
    submit(bus, codec, "C-1", sent_at=WHEN)
    node.step()
    [admission] = platform.poll(timeout=0)
    msgid = header(admission.headers, "msgid")

    def tick(ms: int) -> list:
        clock.now += timedelta(milliseconds=ms)
        node.idle()
        node.relay()
        return platform.poll(timeout=0)

    assert tick(99) == []                                  # within the first wait
    resent = tick(1)
    assert [header(r.headers, "msgid") for r in resent] == [msgid]
    assert [header(r.headers, "msgid") for r in tick(200)] == [msgid]   # attempt 3
    detected = [e for e in plan.events("") if e.code == "ANSWER_TIMEOUT"]
    assert [(e.claim_id, e.node) for e in detected] == [("C-1", "hospitals-110000")]
    assert [e.what for e in plan.events("outage-1")] == ["resent", "resent"]
    # Attempts spent: reversed with the platform, reimbursed at home.
    [reversal] = tick(150)
    assert header(reversal.headers, "kind") == "ReverseTransaction"
    [claim_home] = home.poll(timeout=0)
    assert header(claim_home.headers, "kind") == "ReimburseManually"
    assert plan.events("outage-1")[-1].what == "fallback"
    with node.db.engine.connect() as conn:
        assert hospital_queries.claim_states(conn, ["C-1"]) == {"C-1": "manual"}
    # The admission's answer comes late: it changes nothing and is not refused.
    late = encode_outgoing(codec, "region-110000", Outgoing(
        "AdmissionAnswered", "hospitals-110000", "C-1", {
            "admission_no": "C-1", "visit_id": "M110000-C-1", "result_code": 0,
            "direct": True, "filing_type": "referral", "error": None}), PREFIX,
        sim_time=WHEN, now=clock.now)
    bus.producer().send(late.topic, late.key, late.value, late.headers)
    node.step()
    with node.db.engine.connect() as conn:
        assert hospital_queries.claim_states(conn, ["C-1"]) == {"C-1": "manual"}
        assert not has_rejection(conn, "C-1")
    assert platform.poll(timeout=0) == []                  # no charges uploaded
    node.stop()


def test_without_an_outage_nothing_is_retried(tmp_path, codec):
    plan = plan_of("pause:node=hub")
    clock = Clock(WHEN)
    bus = MemoryBus()
    node = hospitals(tmp_path, bus, codec, plan, clock)
    node.start()
    assert node.on_idle is None
    node.stop()


def test_a_message_sent_ahead_of_the_receivers_clock_is_noticed_once(tmp_path, codec):
    plan = plan_of("skew:node=hospitals-110000,seconds=-600")
    clock = Clock(WHEN)
    bus = MemoryBus()
    node = hospitals(tmp_path, bus, codec, plan, clock)
    node.start()
    submit(bus, codec, "C-1", sent_at=WHEN + timedelta(seconds=600))
    submit(bus, codec, "C-2", sent_at=WHEN + timedelta(seconds=1))   # within tolerance
    node.step()
    skews = [e for e in plan.events("") if e.code == "CLOCK_SKEW"]
    assert [(e.claim_id, e.node) for e in skews] == [("C-1", "hospitals-110000")]
    with node.db.engine.connect() as conn:   # noticed, not refused
        assert hospital_queries.claim_states(conn, ["C-1", "C-2"]) == {
            "C-1": "admitting", "C-2": "admitting"}
    node.stop()


def test_a_relay_keeps_only_what_was_not_acknowledged(tmp_path, codec):
    """One flush, two receivers, the link to one of them drops everything: the other's
    record is marked sent, the lost one stays in the outbox, and the sender notices."""
    from sqlalchemy import MetaData

    from clearsim.db import Database
    from clearsim.node import Node

    plan = plan_of(f"drop:link={SENDER}->hub")
    bus = MemoryBus()

    def on_start(_ctx) -> list[Outgoing]:
        return [Outgoing("StartReconciliation", to, f"RC-{to}",
                         {"statement_date": TODAY, "attempt": 1}, sim_time=WHEN)
                for to in ("hub", "hospitals-110000")]
    node = Node(node_id=SENDER, db=Database(f"sqlite:///{tmp_path / 'r.db'}", MetaData()),
                bus=FaultyBus(bus, plan, SENDER, codec, PREFIX), codec=codec, handlers={},
                make_context=lambda conn: None, prefix=PREFIX, on_start=on_start,
                faults=FaultPlan.points(plan, SENDER))
    with pytest.raises(BusError):
        node.start()
    assert [row.correlation_id for row in node.db.pending_outbox()] == ["RC-hub"]
    assert len(arrived(bus, "hospitals-110000")) == 1 and arrived(bus) == []
    noticed = [e for e in plan.events("") if e.code == "BROKER_UNAVAILABLE"]
    assert [(e.claim_id, e.node) for e in noticed] == [("RC-hub", SENDER)]
    node.stop()

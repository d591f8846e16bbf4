"""Node handlers as plain functions: a message and a unit of work in, messages out.

Each test drives handlers directly against a SQLite database (no bus), with the demo
scenario's reference data; expected amounts are worked out by hand in the comments.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from clearsim import wire
from clearsim.db import Database
from clearsim.domain.settlement import ChargeItem
from clearsim.errors import ClearsimError, ErrorCode
from clearsim.messages import HUB, POLICIES, Message, hospitals_node, region_node
from clearsim.sim.claims import load_claims
from clearsim.sim.scenario import load_scenario
from hub import handlers as hub
from hub import tables as hub_tables
from region_node import handlers as region
from region_node import tables as region_tables
from testbed.topology import build_topology
from tests.unit.poison_bed import settled

ROOT = Path(__file__).resolve().parents[2]
WHEN = datetime(2019, 3, 2, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def topology():
    scenario = load_scenario(ROOT / "scenarios" / "demo.toml")
    return scenario, build_topology(scenario, load_claims(scenario.sim.claims))


class Harness:
    """One node's database and context; ``handle`` runs a handler in one transaction."""

    def __init__(self, tmp_path: Path, name: str, metadata, make_context):
        self.db = Database(f"sqlite:///{tmp_path / (name + '.db')}", metadata)
        self.db.create_all()
        self.make_context = make_context

    def handle(self, handler, kind: str, body: dict, *, sender: str, claim: str = "C-1"):
        msg = Message(kind, {"msgid": f"m-{kind}-{claim}", "sender": sender,
                             "correlation_id": claim, "sim_time": WHEN}, body)
        with self.db.unit_of_work() as uow:
            outs = handler(msg, self.make_context(uow.conn))
            uow.commit()
        return outs

    def run(self, fn, *args):
        with self.db.unit_of_work() as uow:
            out = fn(self.make_context(uow.conn), *args)
            uow.commit()
        return out


def admit_body(claim="C-1", person="P-JJ-001", insurance_code="390", insuring="360400",
               treating="110000", hospital="H-BJ-3", visit_id="M110000-C-1"):
    return {"admission_no": claim, "visit_id": visit_id, "person_id": person,
            "insurance_code": insurance_code, "insuring_region": insuring,
            "treating_region": treating, "hospital": hospital, "care_type": "21",
            "admitted_at": WHEN}


def filing_body(person="P-JJ-001", treating="110000", filing_type="referral"):
    return {"filing_id": "F-1", "person_id": person, "insurance_code": "390",
            "insuring_region": "360400", "treating_region": treating,
            "filing_type": filing_type, "valid_from": date(2019, 3, 1),
            "valid_until": date(2019, 3, 31)}


# -- hub ---------------------------------------------------------------------------

def test_hub_writes_a_policy_once_to_the_policy_table_and_refuses_an_older_version(
        tmp_path, topology):
    scenario, topo = topology
    h = Harness(tmp_path, "hub", hub_tables.metadata,
                lambda conn: hub.HubContext.of(conn, topo.hub))
    body = wire.policy_body(scenario.regions["360400"].policy)
    outs = h.handle(hub.publish_policy, "PublishPolicy", body, sender=region_node("360400"))
    # One record, keyed by the region, in the table every region reads: not one per region.
    assert [(o.to, o.correlation_id) for o in outs] == [(POLICIES, "360400")]
    older = {**body, "policy_version": body["policy_version"] - 1}
    with pytest.raises(ClearsimError) as err:
        h.handle(hub.publish_policy, "PublishPolicy", older, sender=region_node("360400"))
    assert err.value.code is ErrorCode.POLICY_STALE
    assert err.value.rejection.field == "policy_version"


def test_hub_refuses_a_region_speaking_for_another(tmp_path, topology):
    scenario, topo = topology
    h = Harness(tmp_path, "hub", hub_tables.metadata,
                lambda conn: hub.HubContext.of(conn, topo.hub))
    body = wire.policy_body(scenario.regions["360400"].policy)
    with pytest.raises(ClearsimError) as err:
        h.handle(hub.publish_policy, "PublishPolicy", body, sender=region_node("110000"))
    assert err.value.code is ErrorCode.SENDER_NOT_AUTHORIZED


def test_hub_keeps_the_settlement_record_in_fen_and_refuses_a_second_settlement(
        tmp_path, topology):
    import json

    _, topo = topology
    h = Harness(tmp_path, "hub", hub_tables.metadata,
                lambda conn: hub.HubContext.of(conn, topo.hub))
    h.handle(hub.admit_patient, "AdmitPatient", admit_body(treating="110000"),
             sender=region_node("110000"))
    h.handle(hub.admission_verified, "AdmissionVerified",
             {"accepted": True, "policy_version": 3, "error": None},
             sender=region_node("360400"))
    [routed] = h.handle(hub.claim_settled, "ClaimSettled", settled_body(),
                        sender=region_node("110000"))
    assert routed.to == region_node("360400")
    record = h.run(lambda ctx: hub_tables.get_claim(ctx.conn, "C-1")["record"])
    assert json.loads(json.dumps(record)) == record          # plain JSON
    assert (record["fund_pay"], record["ratio"]) == (795_000, "0.500000")
    assert hub.record_body(record) == settled_body()
    with pytest.raises(ClearsimError) as err:
        h.handle(hub.claim_settled, "ClaimSettled", settled_body(),
                 sender=region_node("110000"))
    assert err.value.code is ErrorCode.CLAIM_STATE_INVALID


def test_hub_claim_transitions():
    from hub.tables import CLAIM, ClaimState

    assert CLAIM.allowed(ClaimState.SETTLED, ClaimState.CONFIRMED)
    assert not CLAIM.allowed(ClaimState.CONFIRMED, ClaimState.SETTLED)
    assert all(CLAIM.allowed(state, ClaimState.FAILED) for state in ClaimState)


# -- region as insuring region -----------------------------------------------------
# Region handlers speak English (money in fen) and are reached through the region's
# routing table, which picks the role by kind and sender.

def to_region(h, kind: str, body: dict, *, sender: str, claim: str = "C-1"):
    return h.handle(region.HANDLERS[kind], kind, body, sender=sender, claim=claim)


@pytest.fixture
def jiujiang(tmp_path, topology):
    _, topo = topology
    h = Harness(tmp_path, "jj", region_tables.metadata,
                lambda conn: region.RegionContext.of(conn, topo.regions["360400"]))
    h.run(region.on_start)
    return h


def test_admission_without_a_filing_is_refused_for_direct_settlement(jiujiang):
    [answer] = to_region(jiujiang, "AdmitPatient", admit_body(), sender=HUB)
    assert answer.kind == "AdmissionVerified" and answer.to == HUB
    assert answer.body["accepted"] is False
    assert answer.body["error"]["code"] == "FILING_MISSING"
    assert answer.body["error"]["node"] == region_node("360400")


def test_admission_with_a_registered_filing_carries_policy_version_and_cap_used(jiujiang):
    to_region(jiujiang, "FilingRegistered", filing_body(), sender=HUB)
    [answer] = to_region(jiujiang, "AdmitPatient", admit_body(), sender=HUB)
    assert answer.body["accepted"] is True
    assert answer.body["filing_type"] == "referral"
    assert answer.body["policy_version"] == 3          # demo.toml: Jiujiang policy version 3
    assert answer.body["cap_used"] == 0


def test_admission_with_the_wrong_insurance_type_is_an_identity_mismatch(jiujiang):
    to_region(jiujiang, "FilingRegistered", filing_body(), sender=HUB)
    [answer] = to_region(jiujiang, "AdmitPatient", admit_body(insurance_code="310"),
                         sender=HUB)
    assert answer.body["accepted"] is False
    assert answer.body["error"]["code"] == "IDENTITY_MISMATCH"
    assert answer.body["error"]["field"] == "insutype"      # the wire name the sender wrote


def test_a_region_takes_a_kind_only_from_the_senders_its_routing_table_names(jiujiang):
    with pytest.raises(ClearsimError) as err:
        to_region(jiujiang, "ClaimSettled", settled_body(), sender=hospitals_node("360400"))
    assert err.value.code is ErrorCode.MESSAGE_TYPE_UNEXPECTED


def settled_body(**changes):
    """The worked example of DOMAIN.md (S = 16,500.00, referred tier 600.00 / 50% -> fund
    pay (16,500.00 - 600.00) x 0.50 = 7,950.00), settled under policy version 3."""
    return settled(**{"policy_version": 3, **changes})


def admitted(jiujiang):
    to_region(jiujiang, "FilingRegistered", filing_body(), sender=HUB)
    to_region(jiujiang, "AdmitPatient", admit_body(), sender=HUB)


def test_insuring_region_confirms_a_settlement_it_recomputes_to_the_fen(jiujiang):
    admitted(jiujiang)
    [confirm] = to_region(jiujiang, "ClaimSettled", settled_body(), sender=HUB)
    assert confirm.body["agreed"] is True and confirm.body["cause"] is None
    assert confirm.body["fund_pay"] == 795_000
    # the annual cap ledger now holds the fund pay
    assert jiujiang.run(lambda ctx: region_tables.cap_used(ctx.conn, "P-JJ-001", "390",
                                                            2019)) == 795000


def test_a_settlement_made_with_a_stale_policy_copy_is_caught(jiujiang):
    admitted(jiujiang)
    [confirm] = to_region(jiujiang, "ClaimSettled", settled_body(policy_version=2),
                          sender=HUB)
    assert confirm.body["agreed"] is False
    assert confirm.body["cause"]["code"] == "POLICY_VERSION_MISMATCH"
    assert confirm.body["cause"]["field"] == "policy_version"


def test_a_settlement_whose_fund_pay_differs_by_one_fen_is_caught(jiujiang):
    admitted(jiujiang)
    [confirm] = to_region(jiujiang, "ClaimSettled", settled_body(fund_pay=795_001),
                          sender=HUB)
    assert confirm.body["agreed"] is False
    assert confirm.body["cause"]["code"] == "POLICY_PARAMETER_MISMATCH"
    assert confirm.body["cause"]["field"] == "fund_pay_sumamt"
    assert confirm.body["fund_pay"] == 795_000


def test_a_settlement_arriving_twice_is_refused_by_the_insured_claims_states(jiujiang):
    admitted(jiujiang)
    to_region(jiujiang, "ClaimSettled", settled_body(), sender=HUB)
    with pytest.raises(ClearsimError) as err:
        to_region(jiujiang, "ClaimSettled", settled_body(), sender=HUB, claim="C-1")
    assert err.value.code is ErrorCode.CLAIM_STATE_INVALID


# -- region as treating region -----------------------------------------------------

@pytest.fixture
def beijing(tmp_path, topology):
    scenario, topo = topology
    h = Harness(tmp_path, "bj", region_tables.metadata,
                lambda conn: region.RegionContext.of(conn, topo.regions["110000"]))
    h.run(region.on_start)
    for code in ("360400", "110000"):
        to_region(h, "PolicyPublished", wire.policy_body(scenario.regions[code].policy),
                  sender=HUB, claim=code)
    return h


def charge_lines(items):
    return [{"line_no": f"{i + 1:04d}", "catalog_code": item.code,
             "hospital_item_code": item.code, "quantity": Decimal("1.0000"),
             "unit_price": item.amount, "amount": item.amount}
            for i, item in enumerate(items)]


def admit_at_beijing(beijing, items):
    to_region(beijing, "AdmitPatient", admit_body(visit_id=None),
              sender=hospitals_node("110000"))
    to_region(beijing, "AdmissionVerified", {
        "admission_no": "C-1", "visit_id": "M110000-C-1", "person_id": "P-JJ-001",
        "accepted": True, "insurance_code": "390", "filing_type": "referral",
        "filing_id": "F-1", "policy_version": 3, "cap_used": 0, "error": None}, sender=HUB)
    return to_region(beijing, "UploadCharges", {
        "admission_no": "C-1", "visit_id": "M110000-C-1", "items": charge_lines(items)},
        sender=hospitals_node("110000"))


def test_treating_region_settles_the_worked_example_with_its_catalog(beijing):
    [charges] = admit_at_beijing(beijing, [ChargeItem("D100", 1200000),
                                           ChargeItem("T300", 500000),
                                           ChargeItem("S500", 300000)])
    assert [i["item_class"] for i in charges.body["items"]] == ["A", "B", "C"]
    [settled] = to_region(beijing, "SettleClaim", {
        "admission_no": "C-1", "visit_id": "M110000-C-1", "insurance_code": "390",
        "total": 2_000_000, "discharged_at": WHEN}, sender=hospitals_node("110000"))
    assert settled.kind == "ClaimSettled" and settled.to == HUB
    # Beijing classes T300 as B with 10% self-pay: 500.00; S = 12,000 + 4,500 = 16,500.00
    assert settled.body["in_scope"] == 1_650_000
    assert settled.body["fund_pay"] == 795_000
    assert settled.body["personal_pay"] == 1_205_000
    assert settled.body["policy_version"] == 3


def test_an_item_the_treating_catalog_does_not_know_stops_the_claim(beijing):
    outs = admit_at_beijing(beijing, [ChargeItem("D100", 10000), ChargeItem("X999", 500)])
    answer, to_hub = outs
    assert answer.kind == "ChargesAnswered" and answer.body["result_code"] == -1
    assert answer.body["error"]["code"] == "CATALOG_CODE_UNKNOWN"
    assert answer.body["error"]["field"] == "items[1].med_list_codg"
    assert to_hub.kind == "ClaimRejected" and to_hub.to == HUB


def test_a_settle_request_whose_total_differs_from_the_upload_is_refused(beijing):
    admit_at_beijing(beijing, [ChargeItem("D100", 10000)])
    answer, to_hub = to_region(beijing, "SettleClaim", {
        "admission_no": "C-1", "visit_id": "M110000-C-1", "insurance_code": "390",
        "total": 10_001, "discharged_at": WHEN}, sender=hospitals_node("110000"))
    assert answer.kind == "SettlementAnswered" and answer.body["result_code"] == -1
    assert answer.body["error"]["code"] == "INVALID_AMOUNT"
    assert answer.body["error"]["field"] == "medfee_sumamt"
    assert to_hub.kind == "ClaimRejected"


def test_a_region_refuses_an_admission_for_a_hospital_it_does_not_designate(beijing):
    with pytest.raises(ClearsimError) as err:
        to_region(beijing, "AdmitPatient", admit_body(hospital="H-NOPE", visit_id=None),
                  sender=hospitals_node("110000"))
    assert err.value.code is ErrorCode.HOSPITAL_UNKNOWN
    assert err.value.rejection.field == "fixmedins_code"


def test_care_in_the_insured_persons_own_region_is_verified_and_recorded_there(beijing):
    """A Beijing resident in a Beijing hospital: no hub, both roles in one region."""
    [answer] = to_region(beijing, "AdmitPatient",
                         admit_body(person="P-BJ-001", insurance_code="310", insuring="110000",
                                    visit_id=None),
                         sender=hospitals_node("110000"))
    assert answer.kind == "AdmissionAnswered" and answer.to == hospitals_node("110000")
    assert answer.body["direct"] is True
    insured = beijing.run(lambda ctx: region_tables.get_insured(ctx.conn, "C-1"))
    assert insured["state"] == region_tables.InsuredState.ADMITTED
    treated = beijing.run(lambda ctx: region_tables.get_treated(ctx.conn, "C-1"))
    assert treated["state"] == region_tables.TreatedState.ADMITTED


def test_on_start_publishes_the_policy_once_per_version(tmp_path, topology):
    _, topo = topology
    config = topo.regions["360400"]
    h = Harness(tmp_path, "jj2", region_tables.metadata,
                lambda conn: region.RegionContext.of(conn, config))
    [first] = h.run(region.on_start)
    assert first.kind == "PublishPolicy" and first.body["policy_version"] == 3
    assert h.run(region.on_start) == []          # a restart does not publish again
    newer = replace(config, policy=replace(config.policy, version=4))
    h2 = Harness(tmp_path, "jj2", region_tables.metadata,
                 lambda conn: region.RegionContext.of(conn, newer))
    [again] = h2.run(region.on_start)
    assert again.body["policy_version"] == 4


# -- monthly clearing ----------------------------------------------------------------

def hub_with_claim(tmp_path, topo, state: str, settled_on=None):
    h = Harness(tmp_path, "hubc", hub_tables.metadata,
                lambda conn: hub.HubContext.of(conn, topo.hub))

    def add(ctx):
        hub_tables.insert_claim(ctx.conn, claim_id="C-1", visit_id="M-1", person_id="P-1",
                                insurance_code="390", insuring_region="360400",
                                treating_region="110000", hospital="H-BJ-3", state=state,
                                fund_pay=795_000, claim_date=date(2019, 3, 2),
                                settled_on=settled_on, updated_at=WHEN)
    h.run(add)
    return h


def test_a_clearing_window_does_not_open_with_a_claim_in_flight(tmp_path, topology):
    _, topo = topology
    h = hub_with_claim(tmp_path, topo, "settled", date(2019, 3, 2))
    with pytest.raises(ClearsimError) as err:
        h.handle(hub.open_clearing, "OpenClearing", {"month": "201903"}, sender="sim")
    assert err.value.code is ErrorCode.CLAIM_STATE_INVALID and "C-1" in str(err.value)
    # A claim admitted in March does not hold February back.
    assert len(h.handle(hub.open_clearing, "OpenClearing", {"month": "201902"},
                        sender="sim")) == 4


def test_a_window_opens_once_and_a_wrong_payment_is_refused(tmp_path, topology):
    _, topo = topology
    h = hub_with_claim(tmp_path, topo, "confirmed", date(2019, 3, 2))
    notices = h.handle(hub.open_clearing, "OpenClearing", {"month": "201903"}, sender="sim")
    jj = next(n for n in notices if n.to == region_node("360400"))
    assert (jj.body["payable"], jj.body["net"]) == (795_000, 795_000)
    assert jj.sim_time.date() == date(2019, 4, 12)
    with pytest.raises(ClearsimError) as err:
        h.handle(hub.open_clearing, "OpenClearing", {"month": "201903"}, sender="sim")
    assert err.value.code is ErrorCode.CLAIM_STATE_INVALID
    paid = {"clearing_id": "CLR201903", "month": "201903", "region": "360400",
            "amount": 794_999}
    [answer] = h.handle(hub.clearing_paid, "ClearingPaid", paid, sender=region_node("360400"))
    assert answer.to == region_node("360400")
    assert answer.body["clearing_state"].startswith("failed")
    assert "7949.99" in answer.body["clearing_state"]
    state = h.run(lambda ctx: hub_tables.get_clearing(ctx.conn, "201903")["state"])
    assert state == "failed"


@pytest.fixture
def hospitals_h(tmp_path):
    from hospital_node import handlers as hospitals
    from hospital_node import tables as hospital_tables

    config = hospitals.HospitalsConfig(region="110000", hospitals={"H-BJ-3": 3})
    return Harness(tmp_path, "hosp", hospital_tables.metadata,
                   lambda conn: hospitals.HospitalsContext.of(conn, config))


def at_hospital(h, kind: str, body: dict, when: datetime, claim: str = "C-1"):
    """Hand ``kind`` to the hospitals' handler at simulated moment ``when``."""
    from hospital_node.handlers import HANDLERS

    msg = Message(kind, {"msgid": f"m-{kind}-{claim}-{when:%d}", "sender": "region-110000",
                         "correlation_id": claim, "sim_time": when, "sent_at": when}, body)
    with h.db.unit_of_work() as uow:
        outs = HANDLERS[kind](msg, h.make_context(uow.conn))
        uow.commit()
    return outs


def test_a_hospital_refuses_to_be_paid_twice_for_one_settlement(hospitals_h):
    from hospital_node import handlers as hospitals
    from hospital_node import tables as hospital_tables

    h = hospitals_h

    def settled(ctx):
        hospital_tables.admit(ctx.conn, "C-1", hospital="H-BJ-3", person_id="P-1",
                              insurance_code="390", insuring_region="360400", admitted_at=WHEN,
                              items=[], total=2_000_000, submitted_at=WHEN)
        hospital_tables.start_charging(ctx.conn, hospital_tables.get_claim(ctx.conn, "C-1"),
                                       "M-1")
        hospital_tables.start_settling(ctx.conn, hospital_tables.get_claim(ctx.conn, "C-1"))
        hospital_tables.settle(ctx.conn, hospital_tables.get_claim(ctx.conn, "C-1"),
                               settlement_id="S-1", settled_on=WHEN.date(), fund_pay=795_000,
                               personal_pay=1_205_000, answered_at=WHEN)
    h.run(settled)
    body = {"hospital": "H-BJ-3", "month": "201903", "amount": 795_000,
            "settlement_ids": ["S-1"], "refused_settlement_ids": [],
            "upheld_settlement_ids": []}
    assert h.handle(hospitals.hospital_paid, "HospitalPaid", body, sender="region-110000") == []
    with pytest.raises(ClearsimError) as err:
        h.handle(hospitals.hospital_paid, "HospitalPaid", body, sender="region-110000",
                 claim="C-2")
    assert err.value.code is ErrorCode.CLAIM_STATE_INVALID


def test_a_hospital_reconciles_a_claim_by_the_day_it_was_settled(hospitals_h):
    """Admitted on 1 March, discharged and settled on 3 March: the hospital's totals of
    3 March hold the claim, those of 1 March do not."""
    from hospital_node import tables as hospital_tables

    h = hospitals_h
    admitted, discharged = datetime(2019, 3, 1, tzinfo=timezone.utc), WHEN.replace(day=3)
    [admit] = at_hospital(h, "SubmitClaim", {
        "admission_no": "C-1", "person_id": "P-1", "insurance_code": "390",
        "insuring_region": "360400", "hospital": "H-BJ-3", "admitted_at": admitted,
        "items": [{"catalog_code": "D100", "amount": 2_000_000}]}, admitted)
    assert (admit.kind, admit.to) == ("AdmitPatient", region_node("110000"))
    assert admit.body["treating_region"] == "110000" and admit.body["admitted_at"] == admitted
    [upload] = at_hospital(h, "AdmissionAnswered", {
        "admission_no": "C-1", "visit_id": "M-1", "result_code": 0, "direct": True,
        "filing_type": "referral", "error": None}, admitted)
    assert [line["amount"] for line in upload.body["items"]] == [2_000_000]
    [settle] = at_hospital(h, "ChargesAnswered", {"result_code": 0, "error": None},
                           discharged)
    assert settle.body["total"] == 2_000_000 and settle.body["discharged_at"] == discharged
    assert at_hospital(h, "SettlementAnswered", {
        "settlement_id": "S-1", "result_code": 0, "total": 2_000_000, "fund_pay": 795_000,
        "personal_pay": 1_205_000, "error": None}, discharged) == []
    claim = h.run(lambda ctx: hospital_tables.get_claim(ctx.conn, "C-1"))
    assert (claim["state"], claim["settled_on"]) == ("settled", discharged.date())

    start = {"attempt": 1}
    assert at_hospital(h, "StartReconciliation", {**start, "statement_date": admitted.date()},
                       admitted) == []
    [totals] = at_hospital(h, "StartReconciliation",
                           {**start, "statement_date": discharged.date()}, discharged)
    assert totals.kind == "ReconcileTotals" and totals.body == {
        "settling_party": "H-BJ-3", "period_start": discharged.date(),
        "period_end": discharged.date(), "total": 2_000_000, "fund_pay": 795_000,
        "account_pay": 0, "settlement_count": 1}
    [details] = at_hospital(h, "TotalsReconciled", {
        "settling_party": "H-BJ-3", "period_start": discharged.date(), "result": "1"},
        discharged)
    assert details.body["rows"] == [{"settlement_id": "S-1", "visit_id": "M-1",
                                     "person_id": "P-1", "total": 2_000_000,
                                     "fund_pay": 795_000}]


def test_a_hospital_claim_moves_only_along_its_transitions(hospitals_h):
    from hospital_node import tables as hospital_tables

    h = hospitals_h
    at_hospital(h, "SubmitClaim", {
        "admission_no": "C-1", "person_id": "P-1", "insurance_code": "390",
        "insuring_region": "360400", "hospital": "H-BJ-3", "admitted_at": WHEN,
        "items": [{"catalog_code": "D100", "amount": 10_000}]}, WHEN)
    with pytest.raises(ClearsimError) as err:   # no settlement before the charges
        at_hospital(h, "SettlementAnswered", {
            "settlement_id": "S-1", "result_code": 0, "total": 10_000, "fund_pay": 5_000,
            "personal_pay": 5_000, "error": None}, WHEN)
    assert err.value.code is ErrorCode.CLAIM_STATE_INVALID
    error = {"code": "FILING_MISSING", "message": "no filing", "field": None,
             "node": "region-360400"}
    at_hospital(h, "AdmissionAnswered", {
        "admission_no": "C-1", "visit_id": "M-1", "result_code": 0, "direct": False,
        "filing_type": None, "error": error}, WHEN)
    at_hospital(h, "ClaimRejected", {"error": error}, WHEN)   # a manual claim has ended
    claim = h.run(lambda ctx: hospital_tables.get_claim(ctx.conn, "C-1"))
    assert (claim["state"], claim["fund_pay"], claim["personal_pay"]) == ("manual", 0, 10_000)
    with pytest.raises(ClearsimError) as err:
        hospital_tables.CLAIM.check(hospital_tables.ClaimState.MANUAL,
                                    hospital_tables.ClaimState.SETTLED, what="claim C-1")
    assert err.value.code is ErrorCode.CLAIM_STATE_INVALID

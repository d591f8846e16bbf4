"""Parameter mismatch handler by handler: the wrong copy and mapping the fail points give,
the insuring region's recomputation naming the cause, and the reversal that repairs it.

Amounts are the worked example of DOMAIN.md (Jiujiang resident, referred, Beijing level 3):
D100 12,000.00 class A, T300 5,000.00 class B (Beijing: 10% self-pay), S500 3,000.00 class
C; S = 16,500.00, fund pay (16,500.00 - 600.00) x 0.50 = 7,950.00.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from clearsim import wire
from clearsim.domain.policy import InsuranceType
from clearsim.domain.settlement import ChargeItem
from clearsim.faults import FaultPlan, parse_fault, parse_fault_arg
from clearsim.messages import HUB, hospitals_node, region_node
from clearsim.money import Ratio
from region_node import handlers as region
from region_node import queries as region_queries
from region_node import tables as region_tables
from region_node.fail_points import wrong_copy
from tests.unit.test_handlers import (WHEN, Harness, admit_body, filing_body, settled_body,
                                      to_region)
from tests.unit.test_handlers import topology  # noqa: F401 (fixture)


def fault(text: str):
    return parse_fault(parse_fault_arg(text), "--fault", index=0, seed=1)


def line(n: int, code: str, amount: int, item_class: str, share: str | None = None) -> dict:
    return {"line_no": f"{n:04d}", "catalog_code": code, "item_class": item_class,
            "amount": amount, "b_selfpay_share": None if share is None else Decimal(share)}


RIGHT_LINES = [line(1, "D100", 1_200_000, "A"), line(2, "T300", 500_000, "B", "0.100000"),
               line(3, "S500", 300_000, "C")]


@pytest.fixture
def jiujiang(tmp_path, topology):  # noqa: F811
    _, topo = topology
    h = Harness(tmp_path, "jj", region_tables.metadata,
                lambda conn: region.RegionContext.of(conn, topo.regions["360400"]))
    h.run(region.on_start)
    to_region(h, "FilingRegistered", filing_body(), sender=HUB)
    to_region(h, "AdmitPatient", admit_body(), sender=HUB)
    return h


def cap_used(h) -> int:
    return h.run(lambda ctx: region_tables.cap_used(ctx.conn, "P-JJ-001", "390", 2019))


# -- the wrong copy --------------------------------------------------------------------

def test_a_wrong_copy_changes_what_it_names_and_nothing_else(topology):  # noqa: F811
    scenario, _ = topology
    right = scenario.regions["360400"].policy
    resident = InsuranceType.RESIDENT
    referred = "cross_region.referred"

    stale = wrong_copy(right, "stale", None, None)
    assert stale.version == right.version - 1 and stale.plans == right.plans
    ratio = wrong_copy(right, "ratio", Decimal("0.65"), referred)
    assert ratio.plans[resident].tiers[referred].ratio == Ratio.parse("0.65")
    assert (ratio.plans[resident].tiers["cross_region.not_referred"]
            == right.plans[resident].tiers["cross_region.not_referred"])
    assert ratio.version == right.version
    plausible = wrong_copy(right, "ratio", None, None)
    assert plausible.plans[resident].tiers[referred].ratio == Ratio.parse("0.60")
    deductible = wrong_copy(right, "deductible", None, referred)
    assert deductible.plans[resident].tiers[referred].deductible == 30_000
    cap = wrong_copy(right, "cap", Decimal("1000.00"), None)
    assert cap.plans[resident].annual_cap == 100_000
    assert cap.plans[resident].tiers == right.plans[resident].tiers


# -- the insuring region's recomputation ---------------------------------------------------

def test_an_item_classed_otherwise_than_the_published_catalog_is_a_mapping_mismatch(jiujiang):
    # Beijing classed T300 as A: S = 17,000.00, fund pay (17,000 - 600) x 0.5 = 8,200.00
    wrong = [RIGHT_LINES[0], line(2, "T300", 500_000, "A"), RIGHT_LINES[2]]
    [confirm] = to_region(jiujiang, "ClaimSettled", settled_body(
        items=wrong, in_scope=1_700_000, class_a=1_700_000, class_b=0, b_selfpay=0,
        fund_pay=820_000, personal_pay=1_180_000), sender=HUB)
    assert confirm.body["agreed"] is False
    cause = confirm.body["cause"]
    assert cause["code"] == "CATALOG_MAPPING_MISMATCH"
    assert cause["field"] == "items[1].chrgitm_lv"
    assert "T300" in cause["message"] and "class B" in cause["message"]
    assert confirm.body["fund_pay"] == 795_000     # recomputed with Beijing's catalog


def test_the_same_classes_and_version_but_another_fund_share_is_a_parameter_mismatch(jiujiang):
    # A ratio of 0.60 in the copy: (16,500 - 600) x 0.6 = 9,540.00
    [confirm] = to_region(jiujiang, "ClaimSettled", settled_body(
        items=RIGHT_LINES, ratio=Decimal("0.600000"), fund_pay=954_000,
        personal_pay=1_046_000), sender=HUB)
    assert confirm.body["cause"]["code"] == "POLICY_PARAMETER_MISMATCH"
    assert "ratio 0.50" in confirm.body["cause"]["message"]
    assert confirm.body["fund_pay"] == 795_000


def test_lines_classed_as_published_settle_in_agreement(jiujiang):
    [confirm] = to_region(jiujiang, "ClaimSettled", settled_body(items=RIGHT_LINES), sender=HUB)
    assert confirm.body["agreed"] is True and confirm.body["cause"] is None


def test_a_cancelled_settlement_gives_the_cap_back_and_the_claim_settles_again(jiujiang):
    to_region(jiujiang, "ClaimSettled", settled_body(
        items=RIGHT_LINES, fund_pay=954_000, personal_pay=1_046_000), sender=HUB)
    assert cap_used(jiujiang) == 954_000
    to_region(jiujiang, "CancelSettlement", {"settlement_id": "S-1", "visit_id": "M110000-C-1",
                                             "admission_no": "C-1"}, sender=HUB)
    assert cap_used(jiujiang) == 0
    state = jiujiang.run(lambda ctx: region_tables.get_insured(ctx.conn, "C-1")["state"])
    assert state == "reversed"
    [confirm] = to_region(jiujiang, "ClaimSettled", settled_body(
        settlement_id="S-1-R1", items=RIGHT_LINES), sender=HUB)
    assert confirm.body["agreed"] is True
    assert cap_used(jiujiang) == 795_000
    [row] = jiujiang.run(lambda ctx: region_queries.settlement_disagreements(ctx.conn))
    assert row["cause"] == "POLICY_PARAMETER_MISMATCH"
    assert (row["first_settlement_id"], row["fund_pay_first"]) == ("S-1", 954_000)
    assert (row["final_settlement_id"], row["fund_pay_final"]) == ("S-1-R1", 795_000)
    assert row["reversed_settlement_id"] == "S-1" and row["repaired"] is True
    assert row["finally_wrong"] == 0 and row["detected_on"] == WHEN.date()
    assert (row["fund_pay_first_recomputed"], row["at_risk"]) == (795_000, 159_000)


def test_only_a_settlement_it_disagreed_with_is_cancelled(jiujiang):
    to_region(jiujiang, "ClaimSettled", settled_body(items=RIGHT_LINES), sender=HUB)
    from clearsim.errors import ClearsimError, ErrorCode
    with pytest.raises(ClearsimError) as err:
        to_region(jiujiang, "CancelSettlement", {
            "settlement_id": "S-1", "visit_id": "M110000-C-1", "admission_no": "C-1"},
            sender=HUB)
    assert err.value.code is ErrorCode.CLAIM_STATE_INVALID


# -- the treating region: fail points and the repair ---------------------------------------

def beijing_with(tmp_path, topo, scenario, plan: FaultPlan) -> Harness:
    points = FaultPlan.points(plan, region_node("110000"))
    h = Harness(tmp_path, "bj", region_tables.metadata,
                lambda conn: region.RegionContext.of(conn, topo.regions["110000"],
                                                     faults=points))
    h.run(region.on_start)
    for code in ("360400", "110000"):
        to_region(h, "PolicyPublished", wire.policy_body(scenario.regions[code].policy),
                  sender=HUB, claim=code)
    return h


def charge_and_settle(h):
    items = [ChargeItem("D100", 1_200_000), ChargeItem("T300", 500_000),
             ChargeItem("S500", 300_000)]
    to_region(h, "AdmitPatient", admit_body(visit_id=None), sender=hospitals_node("110000"))
    to_region(h, "AdmissionVerified", {
        "admission_no": "C-1", "visit_id": "M110000-C-1", "person_id": "P-JJ-001",
        "accepted": True, "insurance_code": "390", "filing_type": "referral",
        "filing_id": "F-1", "policy_version": 3, "cap_used": 0, "error": None}, sender=HUB)
    [charges] = to_region(h, "UploadCharges", {
        "admission_no": "C-1", "visit_id": "M110000-C-1",
        "items": [{"line_no": f"{n:04d}", "catalog_code": i.code,
                   "hospital_item_code": i.code, "quantity": Decimal("1.0000"),
                   "unit_price": i.amount, "amount": i.amount}
                  for n, i in enumerate(items, start=1)]}, sender=hospitals_node("110000"))
    [settled] = to_region(h, "SettleClaim", {
        "admission_no": "C-1", "visit_id": "M110000-C-1", "insurance_code": "390",
        "total": 2_000_000, "discharged_at": WHEN}, sender=hospitals_node("110000"))
    return charges, settled


def confirmed(settled, agreed: bool, cause: str | None = None) -> dict:
    return {"settlement_id": settled.body["settlement_id"], "visit_id": "M110000-C-1",
            "admission_no": "C-1", "agreed": agreed, "fund_pay": 795_000,
            "policy_version": 3,
            "cause": None if cause is None else {"code": cause, "message": "m",
                                                 "field": "f", "node": "region-360400"}}


def test_a_wrong_ratio_copy_is_reversed_and_settled_again_before_the_hospital_hears(
        tmp_path, topology):  # noqa: F811
    scenario, topo = topology
    plan = FaultPlan([fault("policy:node=region-110000,region=360400,change=ratio,"
                            "value=0.60")])
    h = beijing_with(tmp_path, topo, scenario, plan)
    _, settled = charge_and_settle(h)
    assert settled.body["fund_pay"] == 954_000 and settled.body["settlement_id"] == \
        "S110000-C-1"
    assert [e.what for e in plan.events()] == ["injected"]
    cancel, again = to_region(h, "SettlementConfirmed",
                              confirmed(settled, False, "POLICY_PARAMETER_MISMATCH"),
                              sender=HUB)
    assert (cancel.kind, cancel.to, cancel.body["settlement_id"]) == (
        "CancelSettlement", HUB, "S110000-C-1")
    assert again.kind == "ClaimSettled" and again.body["settlement_id"] == "S110000-C-1-R1"
    assert again.body["fund_pay"] == 795_000          # the copy as the hub distributed it
    assert [i["item_class"] for i in again.body["items"]] == ["A", "B", "C"]
    [answer] = to_region(h, "SettlementConfirmed", confirmed(again, True), sender=HUB)
    assert answer.kind == "SettlementAnswered" and answer.to == hospitals_node("110000")
    assert (answer.body["settlement_id"], answer.body["fund_pay"]) == ("S110000-C-1-R1",
                                                                       795_000)
    treated = h.run(lambda ctx: region_tables.get_treated(ctx.conn, "C-1"))
    assert treated["state"] == "confirmed"
    assert treated["reversed_settlement_id"] == "S110000-C-1"
    assert treated["reversal"]["settlement"]["fund_pay"] == 954_000
    assert [e.what for e in plan.events()] == ["injected", "reversed", "repaired"]


def test_with_repair_off_the_wrong_settlement_is_answered_and_the_disagreement_kept(
        tmp_path, topology):  # noqa: F811
    scenario, topo = topology
    plan = FaultPlan([fault("policy:node=region-110000,change=stale")], repair=False)
    h = beijing_with(tmp_path, topo, scenario, plan)
    _, settled = charge_and_settle(h)
    assert settled.body["policy_version"] == 2
    [answer] = to_region(h, "SettlementConfirmed",
                         confirmed(settled, False, "POLICY_VERSION_MISMATCH"), sender=HUB)
    assert answer.kind == "SettlementAnswered"
    assert answer.body["settlement_id"] == "S110000-C-1"
    treated = h.run(lambda ctx: region_tables.get_treated(ctx.conn, "C-1"))
    assert treated["state"] == "mismatch" and treated["reversed_settlement_id"] is None


def test_a_wrong_mapping_classes_the_code_as_the_fault_says(tmp_path, topology):  # noqa: F811
    scenario, topo = topology
    plan = FaultPlan([fault("mapping:node=region-110000,code=T300,class=A")])
    h = beijing_with(tmp_path, topo, scenario, plan)
    charges, settled = charge_and_settle(h)
    assert [i["item_class"] for i in charges.body["items"]] == ["A", "A", "C"]
    assert [i["item_class"] for i in settled.body["items"]] == ["A", "A", "C"]
    assert (settled.body["in_scope"], settled.body["fund_pay"]) == (1_700_000, 820_000)
    cancel, again = to_region(h, "SettlementConfirmed",
                              confirmed(settled, False, "CATALOG_MAPPING_MISMATCH"),
                              sender=HUB)
    assert cancel.kind == "CancelSettlement"
    assert [i["item_class"] for i in again.body["items"]] == ["A", "B", "C"]
    assert again.body["fund_pay"] == 795_000


def test_a_fault_limited_to_another_region_or_tier_does_not_strike(tmp_path,
                                                                  topology):  # noqa: F811
    scenario, topo = topology
    plan = FaultPlan([fault("policy:node=region-110000,region=310000,change=ratio"),
                      fault("policy:node=region-110000,change=ratio,"
                            "tier=cross_region.not_referred")])
    h = beijing_with(tmp_path, topo, scenario, plan)
    _, settled = charge_and_settle(h)
    assert settled.body["fund_pay"] == 795_000
    assert plan.events() == []

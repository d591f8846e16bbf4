"""Who may say what: one table of which kind of node may send which message to which, the
checks of a body against its sender, and the nodes refusing, parking and counting what a
sender may not say (never answering it)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from clearsim.errors import ErrorCode
from clearsim.messages import HUB, POLICIES, SIM, hospitals_node, region_node
from clearsim.senders import (HOSPITALS, MAY_SEND, REGION, Senders, kind_of)
from hospital_node.handlers import HANDLERS as HOSPITAL_HANDLERS
from hub.handlers import HANDLERS as HUB_HANDLERS
from region_node.handlers import ANYONE, ROUTES
from region_node.handlers import HOSPITALS as ROUTED_HOSPITALS
from tests.unit.poison_bed import WHEN, Bed, demo_topology, filing

JIUJIANG, BEIJING, SHANGHAI = region_node("360400"), region_node("110000"), region_node("310000")
REGIONS = ("110000", "310000", "360400", "440100")


# -- the table -------------------------------------------------------------------------

def test_the_table_names_exactly_the_kinds_each_node_handles():
    assert set(MAY_SEND[HUB]) == set(HUB_HANDLERS)
    assert set(MAY_SEND[HOSPITALS]) == set(HOSPITAL_HANDLERS)
    assert set(MAY_SEND[REGION]) == {kind for kind, _ in ROUTES}


def test_every_sender_a_region_takes_has_a_route_and_every_route_a_sender():
    def source(spec: str) -> str:
        role = spec.partition(":")[0]
        return ROUTED_HOSPITALS if role == HOSPITALS else role
    allowed = {(kind, source(spec)) for kind, specs in MAY_SEND[REGION].items()
               for spec in specs}
    for kind, sender in allowed:
        assert (kind, sender) in ROUTES or (kind, ANYONE) in ROUTES, (kind, sender)
    for kind, sender in ROUTES:
        if sender != ANYONE:
            assert (kind, sender) in allowed, (kind, sender)


@pytest.mark.parametrize("node_id,kind", [
    ("hub", "hub"), ("sim", "sim"), ("region-360400", "region"),
    ("hospitals-110000", "hospitals"), ("region-36040", None), ("region-3604001", None),
    ("hospitals-", None), ("evil", None), ("", None), (None, None), ("region-36040a", None),
    ("policies", None), ("dlq", None)])
def test_a_node_id_is_well_formed_or_no_sender(node_id, kind):
    assert kind_of(node_id) == kind


@pytest.mark.parametrize("receiver,kind,sender,code", [
    # only the hub issues clearing notices and distributes policies
    (JIUJIANG, "ClearingNotice", HUB, None),
    (JIUJIANG, "ClearingNotice", BEIJING, "SENDER_NOT_AUTHORIZED"),
    (JIUJIANG, "ClearingNotice", hospitals_node("360400"), "SENDER_NOT_AUTHORIZED"),
    (JIUJIANG, "ClearingNotice", SIM, "SENDER_NOT_AUTHORIZED"),
    (JIUJIANG, "PolicyPublished", BEIJING, "SENDER_NOT_AUTHORIZED"),
    (JIUJIANG, "FundsDisbursed", JIUJIANG, "SENDER_NOT_AUTHORIZED"),
    # a region hears from its own hospitals, and from others' only to reimburse by hand
    (JIUJIANG, "UploadCharges", hospitals_node("360400"), None),
    (JIUJIANG, "UploadCharges", hospitals_node("110000"), "SENDER_NOT_AUTHORIZED"),
    (JIUJIANG, "ReimburseManually", hospitals_node("110000"), None),
    (JIUJIANG, "AdmitPatient", hospitals_node("110000"), "SENDER_NOT_AUTHORIZED"),
    (JIUJIANG, "AdmitPatient", HUB, None),
    # a hospital node hears only from its own platform (and the insuring region's refusal)
    (hospitals_node("360400"), "SettlementAnswered", JIUJIANG, None),
    (hospitals_node("360400"), "SettlementAnswered", BEIJING, "SENDER_NOT_AUTHORIZED"),
    (hospitals_node("360400"), "HospitalPaid", HUB, "SENDER_NOT_AUTHORIZED"),
    (hospitals_node("360400"), "MessageRejected", BEIJING, None),
    (hospitals_node("360400"), "SubmitClaim", JIUJIANG, "SENDER_NOT_AUTHORIZED"),
    # the hub hears regions, and the outside world only to start its cycles
    (HUB, "ClaimSettled", BEIJING, None),
    (HUB, "ClaimSettled", hospitals_node("110000"), "SENDER_NOT_AUTHORIZED"),
    (HUB, "OpenClearing", SIM, None),
    (HUB, "OpenClearing", BEIJING, "SENDER_NOT_AUTHORIZED"),
    (HUB, "ClaimSettled", "region-999999", "REGION_UNKNOWN"),
    (HUB, "ClaimSettled", "evil", "SENDER_NOT_AUTHORIZED"),
    (HUB, "ClaimSettled", None, "SENDER_NOT_AUTHORIZED"),
    (HUB, "SubmitClaim", SIM, None),            # not the hub's at all: the loop refuses it
])
def test_who_may_send_what_to_whom(receiver, kind, sender, code):
    rejection = Senders(receiver, REGIONS).check(kind, sender)
    assert (rejection.code.value if rejection else None) == code
    if rejection is not None:
        assert rejection.field == "sender" and rejection.node == receiver
        assert rejection.message


def test_a_refusal_is_answered_only_to_a_node_of_the_run():
    senders = Senders(HUB, REGIONS)
    assert senders.answerable(BEIJING)
    assert not any(senders.answerable(s) for s in (SIM, HUB, "region-999999", "evil", None,
                                                   "region-11000"))
    assert Senders(hospitals_node("360400")).answerable("region-999999")   # it cannot know


# -- the nodes --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def topology():
    return demo_topology()


@pytest.fixture
def bed(tmp_path, topology):
    bed = Bed(tmp_path, topology)
    yield bed
    bed.stop()


def refused_unanswered(bed: Bed, node_id: str, field: str, sender: str,
                       code: str = "SENDER_NOT_AUTHORIZED") -> None:
    assert bed.refused(node_id)[-1] == (code, field)
    letter = bed.parked()[-1]
    assert (letter.node, letter.code, letter.field, letter.sender) == (node_id, code, field,
                                                                      sender)
    assert bed.count("clearsim_dead_lettered_total", node=node_id, code=code) >= 1
    assert ("MessageRejected", letter.msgid) not in {
        (kind, claim) for kind, claim in bed.arrived(sender)}


def test_a_region_cannot_issue_a_clearing_notice(bed):
    bed.node(JIUJIANG)
    bed.arrived(BEIJING)
    bed.send(BEIJING, "ClearingNotice", JIUJIANG, "CLR201903", {
        "clearing_id": "CLR201903", "month": "201903", "region": "360400", "payable": 0,
        "receivable": 10_000_00, "net": -10_000_00, "clearing_state": "notified"})
    bed.step(JIUJIANG)
    refused_unanswered(bed, JIUJIANG, "sender", BEIJING)
    assert bed.arrived(BEIJING) == []


def test_only_the_hub_distributes_policies(bed, topology):
    """A record on the policy table written by a region is refused by every region that
    reads it, and its policy copy stays the hub's."""
    from clearsim import wire
    shanghai = bed.node(SHANGHAI)
    policy = topology.regions["360400"].policy
    forged = {**wire.policy_body(policy), "policy_version": policy.version + 7}
    bed.send(BEIJING, "PolicyPublished", POLICIES, "360400", forged)
    bed.step(SHANGHAI)
    assert bed.refused(SHANGHAI) == [("SENDER_NOT_AUTHORIZED", "sender")]
    [letter] = bed.parked()
    assert (letter.kind, letter.sender, letter.node) == ("PolicyPublished", BEIJING, SHANGHAI)
    from region_node.common import cached_policy
    with shanghai.db.unit_of_work() as uow:
        copy = cached_policy(shanghai.make_context(uow.conn), "360400")
    assert copy is None or copy.version != policy.version + 7


def test_a_hospital_node_hears_only_its_own_platform(bed):
    hospitals = hospitals_node("360400")
    bed.node(hospitals)
    bed.send(BEIJING, "AdmissionAnswered", hospitals, "C-1", {
        "admission_no": "C-1", "visit_id": "M-1", "result_code": 0, "direct": True,
        "filing_type": None, "error": None})
    bed.step(hospitals)
    refused_unanswered(bed, hospitals, "sender", BEIJING)


def test_a_region_hears_only_its_own_hospitals(bed):
    bed.node(JIUJIANG)
    bed.send(hospitals_node("110000"), "UploadCharges", JIUJIANG, "C-1", {
        "admission_no": "C-1", "visit_id": "M-1", "items": []})
    bed.step(JIUJIANG)
    refused_unanswered(bed, JIUJIANG, "sender", hospitals_node("110000"))


def test_a_hospital_node_reimburses_by_hand_only_for_its_own_region(bed):
    bed.node(JIUJIANG)
    bed.send(hospitals_node("110000"), "ReimburseManually", JIUJIANG, "C-1", {
        "admission_no": "C-1", "person_id": "P-JJ-001", "insurance_code": "390",
        "treating_region": "310000", "hospital": "H-SH-3", "settled_at": WHEN, "items": []})
    bed.step(JIUJIANG)
    refused_unanswered(bed, JIUJIANG, "mdtrtarea_admvs", hospitals_node("110000"))


def test_a_hospital_node_reconciles_only_its_own_hospitals(bed):
    bed.node(JIUJIANG)
    bed.send(hospitals_node("360400"), "ReconcileTotals", JIUJIANG, "HRC20190302-H-BJ-3", {
        "settling_party": "H-BJ-3", "period_start": date(2019, 3, 2),
        "period_end": date(2019, 3, 2), "total": 0, "fund_pay": 0, "account_pay": 0,
        "settlement_count": 0})
    bed.step(JIUJIANG)
    refused_unanswered(bed, JIUJIANG, "setl_optins", hospitals_node("360400"))


def test_a_region_files_only_for_its_own_insured(bed):
    bed.node(HUB)
    bed.send(BEIJING, "RegisterFiling", HUB, "F-1", filing(insuring="360400"))
    bed.step(HUB)
    refused_unanswered(bed, HUB, "insuplc_admdvs", BEIJING)


def test_only_a_region_of_the_claim_refuses_for_it_at_the_hub(bed):
    bed.node(HUB)
    bed.send(BEIJING, "AdmitPatient", HUB, "C-1", {
        "admission_no": "C-1", "visit_id": "M110000-C-1", "person_id": "P-JJ-001",
        "insurance_code": "390", "insuring_region": "360400", "treating_region": "110000",
        "hospital": "H-BJ-3", "care_type": "21", "admitted_at": WHEN})
    bed.step(HUB)
    assert bed.refused(HUB) == []
    bed.send(SHANGHAI, "MessageRejected", HUB, "C-1", {
        "refers_to_msgid": "x", "original_transaction": "2401",
        "original_kind": "AdmitPatient", "error": {
            "code": "PERSON_UNKNOWN", "message": "no such person", "field": "psn_no",
            "node": SHANGHAI}})
    bed.step(HUB)
    refused_unanswered(bed, HUB, "sender", SHANGHAI)


def test_only_the_platform_or_the_insuring_region_refuses_for_a_hospitals_claim(bed):
    hospitals = hospitals_node("360400")
    bed.node(hospitals)
    bed.send(SIM, "SubmitClaim", hospitals, "C-1", {
        "admission_no": "C-1", "person_id": "P-BJ-001", "insurance_code": "310",
        "insuring_region": "110000", "hospital": "H-JJ-2", "admitted_at": WHEN,
        "items": [{"line_no": "0001", "catalog_code": "D100", "hospital_item_code": "D100",
                   "quantity": Decimal("1"), "unit_price": 100_00, "amount": 100_00}]})
    bed.step(hospitals)
    rejection = {"refers_to_msgid": "x", "original_transaction": "9501",
                 "original_kind": "ReimburseManually", "error": {
                     "code": "PERSON_UNKNOWN", "message": "no such person",
                     "field": "psn_no", "node": SHANGHAI}}
    bed.send(SHANGHAI, "MessageRejected", hospitals, "C-1", rejection)
    bed.step(hospitals)
    refused_unanswered(bed, hospitals, "sender", SHANGHAI)
    bed.send(BEIJING, "MessageRejected", hospitals, "C-1", rejection)   # the insuring region
    bed.step(hospitals)
    assert bed.refused(hospitals)[-1] == ("SENDER_NOT_AUTHORIZED", "sender")
    assert len(bed.refused(hospitals)) == 1


def test_a_forged_sender_is_refused_before_its_handler_runs(bed):
    bed.node(HUB)
    bed.send("evil", "OpenClearing", HUB, "CLR201903", {"month": "201903"})
    bed.send(BEIJING, "OpenClearing", HUB, "CLR201903", {"month": "201903"})
    bed.step(HUB)
    assert bed.refused(HUB) == [("SENDER_NOT_AUTHORIZED", "sender")] * 2
    assert [p.sender for p in bed.parked()] == ["evil", BEIJING]
    assert bed.count("clearsim_dead_lettered_total", node=HUB,
                     code="SENDER_NOT_AUTHORIZED") == 2
    assert bed.count("clearsim_messages_rejected_total", node=HUB,
                     code=ErrorCode.SENDER_NOT_AUTHORIZED.value) == 2

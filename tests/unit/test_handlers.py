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
from clearsim.messages import HUB, Message, hospitals_node, region_node
from clearsim.sim.claims import load_claims
from clearsim.sim.scenario import load_scenario
from hub import handlers as hub
from hub import tables as hub_tables
from region_node import handlers as region
from region_node import tables as region_tables
from testbed.topology import build_topology

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


def admit_body(claim="C-1", person="P-JJ-001", insutype="390", insuring="360400",
               treating="110000", hospital="H-BJ-3", mdtrt_id="M110000-C-1"):
    return {"ipt_no": claim, "mdtrt_id": mdtrt_id, "psn_no": person, "insutype": insutype,
            "insuplc_admdvs": insuring, "mdtrtarea_admvs": treating,
            "fixmedins_code": hospital, "med_type": "21", "begntime": WHEN}


def filing_body(person="P-JJ-001", treating="110000", refl_type="referral"):
    return {"filing_id": "F-1", "psn_no": person, "insutype": "390",
            "insuplc_admdvs": "360400", "mdtrtarea_admdvs": treating, "refl_type": refl_type,
            "begndate": date(2019, 3, 1), "enddate": date(2019, 3, 31)}


# -- hub ---------------------------------------------------------------------------

def test_hub_distributes_a_policy_to_every_region_and_refuses_an_older_version(
        tmp_path, topology):
    scenario, topo = topology
    h = Harness(tmp_path, "hub", hub_tables.metadata,
                lambda conn: hub.HubContext(conn, topo.hub))
    body = wire.policy_out(scenario.regions["360400"].policy)
    outs = h.handle(hub.publish_policy, "PublishPolicy", body, sender=region_node("360400"))
    assert sorted(o.to for o in outs) == sorted(region_node(r) for r in topo.hub.regions)
    older = {**body, "policy_version": body["policy_version"] - 1}
    with pytest.raises(ClearsimError) as err:
        h.handle(hub.publish_policy, "PublishPolicy", older, sender=region_node("360400"))
    assert err.value.code is ErrorCode.POLICY_STALE
    assert err.value.rejection.field == "policy_version"


def test_hub_refuses_a_region_speaking_for_another(tmp_path, topology):
    scenario, topo = topology
    h = Harness(tmp_path, "hub", hub_tables.metadata,
                lambda conn: hub.HubContext(conn, topo.hub))
    body = wire.policy_out(scenario.regions["360400"].policy)
    with pytest.raises(ClearsimError) as err:
        h.handle(hub.publish_policy, "PublishPolicy", body, sender=region_node("110000"))
    assert err.value.code is ErrorCode.INVALID_INPUT


# -- region as insuring region -----------------------------------------------------

@pytest.fixture
def jiujiang(tmp_path, topology):
    _, topo = topology
    h = Harness(tmp_path, "jj", region_tables.metadata,
                lambda conn: region.RegionContext(conn, topo.regions["360400"]))
    h.run(region.on_start)
    return h


def test_admission_without_a_filing_is_refused_for_direct_settlement(jiujiang):
    [answer] = jiujiang.handle(region.admit_patient, "AdmitPatient", admit_body(), sender=HUB)
    assert answer.kind == "AdmissionVerified" and answer.to == HUB
    assert answer.body["accepted"] is False
    assert answer.body["error"]["code"] == "FILING_MISSING"
    assert answer.body["error"]["node"] == region_node("360400")


def test_admission_with_a_registered_filing_carries_policy_version_and_cap_used(jiujiang):
    jiujiang.handle(region.filing_registered, "FilingRegistered", filing_body(), sender=HUB)
    [answer] = jiujiang.handle(region.admit_patient, "AdmitPatient", admit_body(), sender=HUB)
    assert answer.body["accepted"] is True
    assert answer.body["refl_type"] == "referral"
    assert answer.body["policy_version"] == 3          # demo.toml: Jiujiang policy version 3
    assert answer.body["cap_used"] == Decimal("0.00")


def test_admission_with_the_wrong_insurance_type_is_an_identity_mismatch(jiujiang):
    jiujiang.handle(region.filing_registered, "FilingRegistered", filing_body(), sender=HUB)
    [answer] = jiujiang.handle(region.admit_patient, "AdmitPatient",
                               admit_body(insutype="310"), sender=HUB)
    assert answer.body["accepted"] is False
    assert answer.body["error"]["code"] == "IDENTITY_MISMATCH"
    assert answer.body["error"]["field"] == "insutype"


def settled_body(**changes):
    # The worked example of DOMAIN.md: S = 16,500.00, referred tier 600.00 / 50%
    # -> fund pay (16,500.00 - 600.00) x 0.50 = 7,950.00.
    body = {"setl_id": "S-1", "mdtrt_id": "M110000-C-1", "ipt_no": "C-1",
            "psn_no": "P-JJ-001", "insutype": "390", "insuplc_admdvs": "360400",
            "mdtrtarea_admvs": "110000", "fixmedins_code": "H-BJ-3", "setl_time": WHEN,
            "medfee_sumamt": Decimal("20000.00"), "class_a_sumamt": Decimal("12000.00"),
            "class_b_sumamt": Decimal("5000.00"), "fulamt_ownpay_amt": Decimal("3000.00"),
            "preselfpay_amt": Decimal("500.00"), "inscp_scp_amt": Decimal("16500.00"),
            "act_pay_dedc": Decimal("600.00"), "pool_prop_selfpay": Decimal("0.500000"),
            "hifp_pay": Decimal("7950.00"), "fund_pay_sumamt": Decimal("7950.00"),
            "acct_pay": Decimal("0.00"), "psn_cash_pay": Decimal("12050.00"),
            "tier": "cross_region.referred", "policy_version": 3, "refl_type": "referral"}
    body.update(changes)
    return body


def admitted(jiujiang):
    jiujiang.handle(region.filing_registered, "FilingRegistered", filing_body(), sender=HUB)
    jiujiang.handle(region.admit_patient, "AdmitPatient", admit_body(), sender=HUB)


def test_insuring_region_confirms_a_settlement_it_recomputes_to_the_fen(jiujiang):
    admitted(jiujiang)
    [confirm] = jiujiang.handle(region.claim_settled, "ClaimSettled", settled_body(),
                                sender=HUB)
    assert confirm.body["agreed"] is True and confirm.body["cause"] is None
    assert confirm.body["fund_pay_sumamt"] == Decimal("7950.00")
    # the annual cap ledger now holds the fund pay
    assert jiujiang.run(lambda ctx: region_tables.cap_used(ctx.conn, "P-JJ-001", "390",
                                                            2019)) == 795000


def test_a_settlement_made_with_a_stale_policy_copy_is_caught(jiujiang):
    admitted(jiujiang)
    [confirm] = jiujiang.handle(region.claim_settled, "ClaimSettled",
                                settled_body(policy_version=2), sender=HUB)
    assert confirm.body["agreed"] is False
    assert confirm.body["cause"]["code"] == "POLICY_STALE"
    assert confirm.body["cause"]["field"] == "policy_version"


def test_a_settlement_whose_fund_pay_differs_by_one_fen_is_caught(jiujiang):
    admitted(jiujiang)
    [confirm] = jiujiang.handle(region.claim_settled, "ClaimSettled",
                                settled_body(fund_pay_sumamt=Decimal("7950.01")), sender=HUB)
    assert confirm.body["agreed"] is False
    assert confirm.body["cause"]["code"] == "SETTLEMENT_MISMATCH"
    assert confirm.body["fund_pay_sumamt"] == Decimal("7950.00")


# -- region as treating region -----------------------------------------------------

@pytest.fixture
def beijing(tmp_path, topology):
    scenario, topo = topology
    h = Harness(tmp_path, "bj", region_tables.metadata,
                lambda conn: region.RegionContext(conn, topo.regions["110000"]))
    h.run(region.on_start)
    for code in ("360400", "110000"):
        h.handle(region.policy_published, "PolicyPublished",
                 wire.policy_out(scenario.regions[code].policy), sender=HUB, claim=code)
    return h


def admit_at_beijing(beijing, items):
    beijing.handle(region.admit_patient, "AdmitPatient", admit_body(mdtrt_id=None),
                   sender=hospitals_node("110000"))
    beijing.handle(region.admission_verified, "AdmissionVerified", {
        "ipt_no": "C-1", "mdtrt_id": "M110000-C-1", "psn_no": "P-JJ-001", "accepted": True,
        "insutype": "390", "refl_type": "referral", "filing_id": "F-1", "policy_version": 3,
        "cap_used": Decimal("0.00"), "error": None}, sender=HUB)
    return beijing.handle(region.upload_charges, "UploadCharges", {
        "ipt_no": "C-1", "mdtrt_id": "M110000-C-1", "items": wire.fee_items_out(items)},
        sender=hospitals_node("110000"))


def test_treating_region_settles_the_worked_example_with_its_catalog(beijing):
    [charges] = admit_at_beijing(beijing, [ChargeItem("D100", 1200000),
                                           ChargeItem("T300", 500000),
                                           ChargeItem("S500", 300000)])
    assert [i["chrgitm_lv"] for i in charges.body["items"]] == ["A", "B", "C"]
    [settled] = beijing.handle(region.settle_claim, "SettleClaim", {
        "ipt_no": "C-1", "mdtrt_id": "M110000-C-1", "insutype": "390",
        "medfee_sumamt": Decimal("20000.00"), "endtime": WHEN},
        sender=hospitals_node("110000"))
    assert settled.kind == "ClaimSettled" and settled.to == HUB
    # Beijing classes T300 as B with 10% self-pay: 500.00; S = 12,000 + 4,500 = 16,500.00
    assert settled.body["inscp_scp_amt"] == Decimal("16500.00")
    assert settled.body["fund_pay_sumamt"] == Decimal("7950.00")
    assert settled.body["psn_cash_pay"] == Decimal("12050.00")
    assert settled.body["policy_version"] == 3


def test_an_item_the_treating_catalog_does_not_know_stops_the_claim(beijing):
    outs = admit_at_beijing(beijing, [ChargeItem("D100", 10000), ChargeItem("X999", 500)])
    answer, to_hub = outs
    assert answer.kind == "ChargesAnswered" and answer.body["infcode"] == -1
    assert answer.body["error"]["code"] == "CATALOG_CODE_UNKNOWN"
    assert answer.body["error"]["field"] == "items[1].med_list_codg"
    assert to_hub.kind == "ClaimRejected" and to_hub.to == HUB


def test_a_settle_request_whose_total_differs_from_the_upload_is_refused(beijing):
    admit_at_beijing(beijing, [ChargeItem("D100", 10000)])
    answer, to_hub = beijing.handle(region.settle_claim, "SettleClaim", {
        "ipt_no": "C-1", "mdtrt_id": "M110000-C-1", "insutype": "390",
        "medfee_sumamt": Decimal("100.01"), "endtime": WHEN},
        sender=hospitals_node("110000"))
    assert answer.kind == "SettlementAnswered" and answer.body["infcode"] == -1
    assert answer.body["error"]["code"] == "INVALID_AMOUNT"
    assert answer.body["error"]["field"] == "medfee_sumamt"
    assert to_hub.kind == "ClaimRejected"


def test_a_region_refuses_an_admission_for_a_hospital_it_does_not_designate(beijing):
    with pytest.raises(ClearsimError) as err:
        beijing.handle(region.admit_patient, "AdmitPatient",
                       admit_body(hospital="H-NOPE", mdtrt_id=None),
                       sender=hospitals_node("110000"))
    assert err.value.code is ErrorCode.HOSPITAL_UNKNOWN
    assert err.value.rejection.field == "fixmedins_code"


def test_on_start_publishes_the_policy_once_per_version(tmp_path, topology):
    _, topo = topology
    config = topo.regions["360400"]
    h = Harness(tmp_path, "jj2", region_tables.metadata,
                lambda conn: region.RegionContext(conn, config))
    [first] = h.run(region.on_start)
    assert first.kind == "PublishPolicy" and first.body["policy_version"] == 3
    assert h.run(region.on_start) == []          # a restart does not publish again
    newer = replace(config, policy=replace(config.policy, version=4))
    h2 = Harness(tmp_path, "jj2", region_tables.metadata,
                 lambda conn: region.RegionContext(conn, newer))
    [again] = h2.run(region.on_start)
    assert again.body["policy_version"] == 4


# -- monthly clearing ----------------------------------------------------------------

def hub_with_claim(tmp_path, topo, state: str, setl_date=None):
    h = Harness(tmp_path, "hubc", hub_tables.metadata,
                lambda conn: hub.HubContext(conn, topo.hub))

    def add(ctx):
        hub_tables.insert_claim(ctx.conn, claim_id="C-1", mdtrt_id="M-1", psn_no="P-1",
                                insutype="390", insuring_region="360400",
                                treating_region="110000", hospital="H-BJ-3", state=state,
                                fund_pay=795_000, claim_date=date(2019, 3, 2),
                                setl_date=setl_date, updated_at=WHEN)
    h.run(add)
    return h


def test_a_clearing_window_does_not_open_with_a_claim_in_flight(tmp_path, topology):
    _, topo = topology
    h = hub_with_claim(tmp_path, topo, "settled", date(2019, 3, 2))
    with pytest.raises(ClearsimError) as err:
        h.handle(hub.open_clearing, "OpenClearing", {"setlym": "201903"}, sender="sim")
    assert err.value.code is ErrorCode.CLAIM_STATE_INVALID and "C-1" in str(err.value)
    # A claim admitted in March does not hold February back.
    assert len(h.handle(hub.open_clearing, "OpenClearing", {"setlym": "201902"},
                        sender="sim")) == 4


def test_a_window_opens_once_and_a_wrong_payment_is_refused(tmp_path, topology):
    _, topo = topology
    h = hub_with_claim(tmp_path, topo, "confirmed", date(2019, 3, 2))
    notices = h.handle(hub.open_clearing, "OpenClearing", {"setlym": "201903"}, sender="sim")
    jj = next(n for n in notices if n.to == region_node("360400"))
    assert (jj.body["payable"], jj.body["net"]) == (Decimal("7950.00"), Decimal("7950.00"))
    assert jj.sim_time.date() == date(2019, 4, 12)
    with pytest.raises(ClearsimError) as err:
        h.handle(hub.open_clearing, "OpenClearing", {"setlym": "201903"}, sender="sim")
    assert err.value.code is ErrorCode.CLAIM_STATE_INVALID
    paid = {"clr_appy_evt_id": "CLR201903", "setlym": "201903", "admdvs": "360400",
            "amount": Decimal("7949.99")}
    [answer] = h.handle(hub.clearing_paid, "ClearingPaid", paid, sender=region_node("360400"))
    assert answer.to == region_node("360400") and answer.body["clr_stas"].startswith("failed")
    assert "7949.99" in answer.body["clr_stas"]
    state = h.run(lambda ctx: hub_tables.get_clearing(ctx.conn, "201903")["state"])
    assert state == "failed"


def test_a_hospital_refuses_to_be_paid_twice_for_one_settlement(tmp_path):
    from hospital_node import handlers as hospitals
    from hospital_node import tables as hospital_tables
    from hospital_node.handlers import HospitalsConfig

    config = HospitalsConfig(region="110000", hospitals={"H-BJ-3": 3})
    h = Harness(tmp_path, "hosp", hospital_tables.metadata,
                lambda conn: hospitals.HospitalsContext(conn, config))
    h.run(lambda ctx: hospital_tables.insert_claim(
        ctx.conn, claim_id="C-1", hospital="H-BJ-3", psn_no="P-1", insutype="390",
        insuring_region="360400", begntime=WHEN, items=[], total=2_000_000, state="settled",
        setl_id="S-1", fund_pay=795_000, personal_pay=1_205_000, submitted_at=WHEN))
    body = {"fixmedins_code": "H-BJ-3", "setlym": "201903", "amount": Decimal("7950.00"),
            "setl_ids": ["S-1"], "refused_setl_ids": [], "upheld_setl_ids": []}
    assert h.handle(hospitals.hospital_paid, "HospitalPaid", body, sender="region-110000") == []
    with pytest.raises(ClearsimError) as err:
        h.handle(hospitals.hospital_paid, "HospitalPaid", body, sender="region-110000",
                 claim="C-2")
    assert err.value.code is ErrorCode.CLAIM_STATE_INVALID

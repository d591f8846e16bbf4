"""Interface mismatches and corrupted bytes in a whole run: the demo's regions, hospitals and
twelve claims, on the in-process bus (and one interface mismatch on a real Kafka broker).

Each run shows the fault detected with its documented code (naming the field and both
versions), every claim ending terminal or explained (manual fallback, or held and sent
again), the parties agreeing and the money invariants holding.
"""

from __future__ import annotations

from clearsim.codec import Codec

from pathlib import Path

import pytest
from sqlalchemy import select

from clearsim.db import rejections
from clearsim.faults import parse_fault, parse_fault_arg
from clearsim.messages import HUB
from clearsim.sim.claims import load_claims
from clearsim.sim.scenario import load_scenario
from testbed.runner import RunOptions, Simulation
from tests.e2e.test_run_cli import assert_same_as_offline, offline_answers

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.toml"
# Claims treated in Beijing, across regions, settled directly, before 10 March 2019.
IN_WINDOW = {"C-001", "C-004"}
MANUAL_EVERYWHERE = {"hospital": "manual", "treating_region": "refused", "hub": "refused",
                     "insuring_region": "manual"}


def run(tmp_path, *faults: str, kafka=None, prefix=None):
    scenario = load_scenario(DEMO)
    parsed = tuple(parse_fault(parse_fault_arg(text), "--fault", index=i,
                               seed=scenario.sim.seed, nodes=scenario.node_ids())
                   for i, text in enumerate(faults))
    sim = Simulation(scenario, load_claims(scenario.sim.claims), RunOptions(
        workdir=tmp_path, kafka=kafka, prefix=prefix, faults=parsed, timeout=120))
    return sim, sim.run()


def refusals_at(sim, node_id: str) -> list[dict]:
    with sim.nodes[node_id].db.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(rejections)).mappings()]


def events(sim, what: str) -> list:
    return [e for e in sim.plan.events() if e.what == what]


def by_id(result) -> dict[str, dict]:
    return {c["claim_id"]: c for c in result.claims}


def assert_sound(result) -> None:
    """Every claim terminal, every party agreeing, no invariant violated."""
    assert result.ok, result.summary["invariant_violations"]
    assert result.summary["unfinished"] == 0
    assert {c["status"] for c in result.claims} <= {"direct", "manual", "rejected"}


def assert_fell_back_to_manual(sim, result, claims: set[str]) -> None:
    claims_now = by_id(result)
    offline = offline_answers()
    for claim_id in claims:
        claim = claims_now[claim_id]
        assert claim["status"] == "manual" and claim["parties"] == MANUAL_EVERYWHERE, claim
        # reimbursed at home, the insuring region's own way (its not-referred tier)
        assert claim["total"] == offline[claim_id]["total"]
        assert claim["tier"] == "cross_region.not_referred"
    assert {e.claim_id for e in events(sim, "fallback")} == claims
    # Claims outside the window, of persons the fallback did not touch, are as offline.
    untouched = {"C-002", "C-003", "C-006", "C-007", "C-009", "C-010", "C-011"}
    assert_same_as_offline([claims_now[c] if c in untouched else offline[c]
                            for c in offline])


MISMATCHES = [
    # change and its parameters, code, field named, both versions named
    ("change=rename,field=psn_no", "SCHEMA_INCOMPATIBLE", "psn_no", True),
    ("change=remove,field=psn_no", "SCHEMA_INCOMPATIBLE", "psn_no", True),
    ("change=retype,field=fund_pay_sumamt", "SCHEMA_INCOMPATIBLE", "fund_pay_sumamt", True),
    ("change=rename,registered=false", "SCHEMA_UNKNOWN", "fingerprint", False),
    ("change=infno", "INFNO_MISMATCH", "infno", True),
    ("change=empty,field=psn_no", "FIELD_REQUIRED", "psn_no", True),
]


@pytest.mark.parametrize("change,code,field,versions", MISMATCHES,
                         ids=[m[0].replace("change=", "").replace(",", "-") for m in MISMATCHES])
def test_a_mismatched_claimsettled_is_refused_with_its_code_and_falls_back_to_manual(
        tmp_path, change, code, field, versions):
    sim, result = run(tmp_path, "schema:node=region-110000,message=ClaimSettled,"
                                f"{change},until=2019-03-10")
    refused = refusals_at(sim, HUB)
    assert {r["correlation_id"] for r in refused} == IN_WINDOW
    assert {(r["code"], r["field"], r["node"]) for r in refused} == {(code, field, HUB)}
    if versions:
        now = Codec().version("ClaimSettled")
        assert all(f"v{now + 1}" in r["message"] and f"v{now}" in r["message"]
                   for r in refused)
    assert result.summary["rejections_by_code"] == {code: len(refused)}
    assert_sound(result)
    assert_fell_back_to_manual(sim, result, IN_WINDOW)
    # each claim: injected, refused, sent again RESENDS times, then the fallback
    assert {e.claim_id for e in events(sim, "injected")} == IN_WINDOW
    assert len(events(sim, "resent")) == 2 * sim.nodes["region-110000"].resends
    detected = [e for e in events(sim, "detected") if e.code == code]
    assert {(e.claim_id, e.node) for e in detected} == {(c, HUB) for c in IN_WINDOW}


def test_a_compatible_evolution_still_flows(tmp_path):
    sim, result = run(tmp_path, "schema:node=region-110000,message=ClaimSettled,"
                                "change=compatible")
    assert_sound(result)
    assert_same_as_offline(result.claims)
    assert result.summary["rejections_by_code"] == {}
    assert len(events(sim, "injected")) >= 3           # every ClaimSettled Beijing sends


@pytest.mark.parametrize("fault", [
    "schema:node=hospitals-110000,message=SettleClaim,change=rename",     # hospital sends
    "schema:node=region-110000,message=ChargesAnswered,change=empty,field=mdtrt_id",
    "schema:node=hub,message=ClaimSettled,change=remove,field=setl_id",    # the hub routes
    "schema:node=region-360400,message=AdmissionVerified,change=infno",    # the verdict
], ids=["hospital-SettleClaim", "treating-ChargesAnswered", "hub-ClaimSettled",
        "insuring-AdmissionVerified"])
def test_every_party_falls_back_together_whoever_sent_the_mismatch(tmp_path, fault):
    sim, result = run(tmp_path, fault + ",from=2019-03-01,until=2019-03-03")
    assert_sound(result)
    claim = by_id(result)["C-001"]                     # Jiujiang resident in Beijing, 2 March
    assert claim["status"] == "manual" and claim["parties"] == MANUAL_EVERYWHERE
    assert [e.claim_id for e in events(sim, "fallback")] == ["C-001"]


def test_a_held_claim_waits_out_the_window_and_then_settles(tmp_path):
    sim, result = run(tmp_path, "schema:node=region-110000,message=ClaimSettled,"
                                "change=rename,fallback=hold,from=2019-03-01,until=2019-03-10")
    assert_sound(result)
    assert_same_as_offline(result.claims)             # nothing failed, nothing changed
    held, released = events(sim, "held"), events(sim, "released")
    assert {e.claim_id for e in held} == {e.claim_id for e in released} == IN_WINDOW
    from datetime import date
    assert all(e.day < date(2019, 3, 10) for e in held)
    assert all(e.day >= date(2019, 3, 10) for e in released)
    assert events(sim, "fallback") == []
    assert all(r["code"] == "SCHEMA_INCOMPATIBLE" for r in refusals_at(sim, HUB))


def test_corrupted_bytes_on_a_busy_link_change_nothing(tmp_path):
    """Half of what the regions send the hub arrives damaged: each is refused with a code
    and sent again; every claim settles as ``clearsim settle`` says."""
    sim, result = run(tmp_path, "corrupt:link=*->hub,rate=0.5,bytes=2")
    assert_sound(result)
    assert_same_as_offline(result.claims)
    codes = result.summary["rejections_by_code"]
    assert set(codes) <= {"MESSAGE_MALFORMED", "SCHEMA_UNKNOWN"} and sum(codes.values()) > 20
    injected = events(sim, "injected")
    assert len(injected) == sum(codes.values())
    assert len(events(sim, "resent")) + len(events(sim, "held")) == len(injected)
    assert events(sim, "fallback") == []
    assert {r["node"] for r in refusals_at(sim, HUB)} == {HUB}


@pytest.mark.kafka
def test_an_interface_mismatch_on_a_real_broker(tmp_path, kafka_bootstrap, topic_prefix):
    sim, result = run(tmp_path, "schema:node=region-110000,message=ClaimSettled,"
                                "change=rename,field=psn_no,until=2019-03-10",
                      kafka=kafka_bootstrap, prefix=topic_prefix)
    assert result.summary["bus"].startswith("kafka")
    refused = refusals_at(sim, HUB)
    assert {(r["code"], r["field"]) for r in refused} == {("SCHEMA_INCOMPATIBLE", "psn_no")}
    assert_sound(result)
    assert_fell_back_to_manual(sim, result, IN_WINDOW)

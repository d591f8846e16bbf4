"""Three-party reconciliation finds a difference planted in one party's ledger, names its
cause and owner, and repairs it — on both buses. The repaired ledger then clears.

C-001 (Jiujiang resident in Beijing) fund pay 7,950.00; C-004 (Shanghai resident in
Beijing) 15,012.65. After settlement, one fen is added to Jiujiang's record of C-001, and
Shanghai's record of C-004 is taken back to "admitted" as if it had never arrived.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, update

from clearsim.messages import region_node
from clearsim.sim.claims import load_claims
from clearsim.sim.scenario import load_scenario
from region_node import tables as region_tables
from testbed.report import collect
from testbed.runner import RunOptions, Simulation

ROOT = Path(__file__).resolve().parents[2]
insured = region_tables.insured_claims


def read(sim, node_id: str, statement) -> list:
    """A node's own rows, read straight from its tables (the test looks inside)."""
    return sim.query(node_id, lambda conn: conn.execute(statement).mappings().all())


def plant(sim, region: str, claim_id: str, person: str, cap_change: int, **values) -> None:
    """Change one record of a region's ledger, and its annual-cap ledger with it, as a
    region that had recorded it so would have."""
    cap = region_tables.cap_usage
    with sim.nodes[region_node(region)].db.engine.begin() as conn:
        conn.execute(update(insured).where(insured.c.claim_id == claim_id).values(**values))
        conn.execute(update(cap).where(cap.c.person_id == person)
                     .values(used=cap.c.used + cap_change))


def test_planted_differences_are_found_with_their_cause_and_repaired(tmp_path, bus_url,
                                                                     topic_prefix):
    scenario = load_scenario(ROOT / "scenarios" / "demo.toml")
    claims = [c for c in load_claims(scenario.sim.claims) if c.claim_id in ("C-001", "C-004")]
    sim = Simulation(scenario, claims, RunOptions(workdir=tmp_path, kafka=bus_url,
                                                  prefix=topic_prefix))
    sim.start()
    try:
        sim.await_policies()
        sim.register_filings()
        sim.submit_claims()
        plant(sim, "360400", "C-001", "P-JJ-001", +1, fund_pay=795_001)
        plant(sim, "310000", "C-004", "P-SH-001", -1_501_265, state="admitted")
        sim.reconcile_days()
        sim.clear_months()
    finally:
        sim.stop()
    result = collect(sim, wall_seconds=0)
    cases = {c["claim_id"]: c for c in result.cases}
    assert {k: cases["C-001"][k] for k in ("cause", "owner", "repair", "state")} == {
        "cause": "AMOUNT_DIFFERS", "owner": "region-360400",
        "repair": "reversal and resend", "state": "repaired"}
    assert {k: cases["C-004"][k] for k in ("cause", "owner", "repair", "state")} == {
        "cause": "MISSING_AT_REGION", "owner": "region-310000", "repair": "resend",
        "state": "repaired"}
    assert result.summary["invariant_violations"] == []
    # The repaired ledgers hold the hub's figures, and the annual cap counts C-001 once.
    jj = read(sim, region_node("360400"),
              select(insured).where(insured.c.claim_id == "C-001"))
    assert (jj[0]["state"], jj[0]["fund_pay"]) == ("settled", 795_000)
    used = read(sim, region_node("360400"), select(region_tables.cap_usage))
    assert [(u["person_id"], u["used"]) for u in used] == [("P-JJ-001", 795_000)]
    sh = read(sim, region_node("310000"),
              select(insured).where(insured.c.claim_id == "C-004"))
    assert (sh[0]["state"], sh[0]["fund_pay"]) == ("settled", 1_501_265)
    # Both claims are reconciled, and the month cleared by the repaired ledgers.
    assert all(c["reconciled_on"] for c in result.claims)
    assert {r["region"]: r["payable"] for r in result.statements} == {
        "110000": 0, "310000": 1_501_265, "360400": 795_000, "440100": 0}


def test_a_region_that_never_answers_is_asked_again_then_becomes_a_case(tmp_path, bus_url,
                                                                          topic_prefix):
    """Shanghai's reconciliation service is down: its requests go unanswered. The hub asks
    again after backoff (in simulated working days), and after max_attempts (3) records
    the silence as a NO_ANSWER case owned by Shanghai; the run goes on and clears."""

    scenario = load_scenario(ROOT / "scenarios" / "demo.toml")
    claims = [c for c in load_claims(scenario.sim.claims) if c.claim_id in ("C-001", "C-004")]
    sim = Simulation(scenario, claims, RunOptions(workdir=tmp_path, kafka=bus_url,
                                                  prefix=topic_prefix, answer_timeout=3))
    sim.start()
    try:
        silent = sim.nodes[region_node("310000")]
        silent.handlers["ReconcileTotals"] = lambda msg, ctx: []
        sim.await_policies()
        sim.register_filings()
        sim.submit_claims()
        sim.await_audits()
        sim.reconcile_days()
        sim.clear_months()
    finally:
        sim.stop()
    result = collect(sim, wall_seconds=0)
    from hub import tables as hub_tables
    attempts = {(str(r["statement_date"]), r["region"]): (r["state"], r["attempts"])
                for r in read(sim, "hub", select(hub_tables.reconciliations))}
    assert attempts[("2019-03-07", "310000")] == ("escalated", 3)
    assert attempts[("2019-03-07", "110000")][0] == "balanced"
    no_answer = [c for c in result.cases if c["cause"] == "NO_ANSWER"]
    assert {(c["admdvs"], c["owner"], c["state"]) for c in no_answer} == {
        ("310000", "region-310000", "escalated")}
    assert "C-004" in {c["claim_id"] for c in no_answer}
    # C-004 (Shanghai insured) was never agreed by all three: explained by the case.
    c004 = next(c for c in result.claims if c["claim_id"] == "C-004")
    assert c004["reconciled_on"] is None
    assert result.summary["invariant_violations"] == []


def test_a_hospital_ledger_that_differs_from_its_platform_is_corrected(tmp_path, bus_url,
                                                                       topic_prefix):
    """Beijing's hospital books one fen more for C-001 than its platform settled. Its daily
    reconciliation (3201 then 3202) finds the row (result 3, data differ), the platform
    sends its record again, and the hospital is paid back exactly what was settled."""
    from hospital_node import tables as hospital_tables

    scenario = load_scenario(ROOT / "scenarios" / "demo.toml")
    claims = [c for c in load_claims(scenario.sim.claims) if c.claim_id in ("C-001", "C-004")]
    sim = Simulation(scenario, claims, RunOptions(workdir=tmp_path, kafka=bus_url,
                                                  prefix=topic_prefix))
    sim.start()
    books = hospital_tables.claims
    try:
        sim.await_policies()
        sim.register_filings()
        sim.submit_claims()
        with sim.nodes["hospitals-110000"].db.engine.begin() as conn:
            conn.execute(update(books).where(books.c.claim_id == "C-001")
                         .values(fund_pay=795_001))
        sim.await_audits()
        sim.reconcile_days()
        sim.clear_months()
    finally:
        sim.stop()
    result = collect(sim, wall_seconds=0)
    assert result.summary["hospital_reconciliation_differences"] == [
        {"stmt_date": "2019-03-02", "hospital": "H-BJ-3", "setl_id": "S110000-C-001",
         "stmt_rslt": 3}]
    [row] = read(sim, "hospitals-110000", select(books).where(books.c.claim_id == "C-001"))
    assert (row["fund_pay"], row["paid_amount"]) == (795_000, 795_000)
    assert result.summary["invariant_violations"] == []

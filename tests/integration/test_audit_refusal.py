"""Audit, refusal, appeal and their clearing, on both buses, worked by hand.

Demo audit rules: split admission within 15 days refuses half (appeals not upheld); here the
ultra-high-cost threshold is lowered to 30,000.00 (a tenth refused, appeals upheld).
- C-001 Jiujiang resident at H-BJ-3, Sat 2 March: fund pay 7,950.00, no refusal.
- C-008 the same person at H-BJ-3, Fri 15 March, 13 days later: a split admission. Fund pay
  142,050.00 (the annual cap); half refused = 71,025.00, decided 5 working days later (Fri
  22 March); the appeal is decided Fri 29 March and not upheld.
- C-004 Shanghai resident at H-BJ-3, Thu 7 March: 35,821.09 > 30,000.00. Fund pay
  15,012.65; a tenth is 1,501.265 -> 1,501.27 refused on Thu 14 March; the appeal is upheld
  on Thu 21 March, so March's clearing deducts and returns it.
March for Beijing's hospital: 7,950.00 + 142,050.00 + 15,012.65 - 71,025.00 - 1,501.27
+ 1,501.27 = 93,987.65; Jiujiang owes 7,950.00 + 142,050.00 - 71,025.00 = 78,975.00.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sqlalchemy import select

from clearsim.domain.audit import Rule
from clearsim.messages import hospitals_node
from clearsim.money import Ratio
from clearsim.sim.claims import load_claims
from clearsim.sim.scenario import load_scenario
from hospital_node import tables as hospital_tables
from testbed.runner import RunOptions, Simulation

ROOT = Path(__file__).resolve().parents[2]


def read(sim, node_id: str, statement) -> list:
    """A node's own rows, read straight from its tables (the test looks inside)."""
    return sim.query(node_id, lambda conn: conn.execute(statement).mappings().all())


def test_refusals_appeals_and_their_clearing_to_the_fen(tmp_path, bus_url, topic_prefix):
    scenario = load_scenario(ROOT / "scenarios" / "demo.toml")
    scenario = replace(scenario, audit=replace(
        scenario.audit, ultra_high_cost=Rule(3_000_000, Ratio.parse("0.10"))))
    claims = [c for c in load_claims(scenario.sim.claims)
              if c.claim_id in ("C-001", "C-004", "C-008")]
    sim = Simulation(scenario, claims, RunOptions(workdir=tmp_path, kafka=bus_url,
                                                  prefix=topic_prefix))
    result = sim.run()
    assert result.summary["invariant_violations"] == []
    books = {c["claim_id"]: c for c in read(sim, hospitals_node("110000"),
                                            select(hospital_tables.claims))}
    assert (books["C-008"]["refused_amount"], str(books["C-008"]["refused_on"]),
            books["C-008"]["appeal_upheld"]) == (7_102_500, "2019-03-22", False)
    assert (books["C-004"]["refused_amount"], str(books["C-004"]["refused_on"]),
            books["C-004"]["appeal_upheld"], str(books["C-004"]["appeal_decided_on"])) == (
        150_127, "2019-03-14", True, "2019-03-21")
    assert books["C-001"]["refused_amount"] is None
    # every settlement paid back in full, the refusal taken and the upheld appeal returned
    assert {c: (b["paid_amount"], str(b["deducted_on"]), str(b["returned_on"]))
            for c, b in books.items()} == {
        "C-001": (795_000, "None", "None"),
        "C-004": (1_501_265, "2019-05-03", "2019-05-03"),
        "C-008": (14_205_000, "2019-05-03", "None")}
    rows = {r["region"]: r for r in result.statements if r["setlym"] == "201903"}
    assert rows["110000"]["paid_to_hospitals"] == 9_398_765
    assert rows["360400"]["payable"] == 7_897_500
    assert rows["310000"]["payable"] == 1_501_265
    assert (result.summary["refused"], result.summary["appeals_upheld"]) == (
        "72526.27", "1501.27")

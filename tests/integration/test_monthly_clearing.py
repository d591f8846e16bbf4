"""Monthly clearing and payback end to end, on both buses, with amounts worked by hand.

Three demo claims of March 2019:
- C-001 Jiujiang resident in Beijing (the worked example): fund pay 7,950.00
- C-003 Beijing employee in Jiujiang: A 8,800 + B 1,200 (10% self-pay: 120) -> S 9,880.00;
  cross-region referred 1,300.00 / 75%: (9,880 - 1,300) x 0.75 = 6,435.00
- C-007 Beijing resident in Beijing (in-region level 2): 3,100 + (800 - 40) = 3,860.00;
  (3,860 - 800) x 0.75 = 2,295.00 — never passes through the hub

Jiujiang owes 7,950.00 and is owed 6,435.00: it pays the hub 1,515.00, which the hub
disburses to Beijing. Beijing pays its hospital 7,950.00 + 2,295.00 = 10,245.00; Jiujiang
pays its hospital 6,435.00. March ends on Sunday 31: notice 12 April (+10 working days),
payment 19 April (+5), disbursement 30 April (+7), hospitals paid Friday 3 May (+3).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from clearsim.sim.claims import load_claims
from clearsim.sim.scenario import load_scenario
from testbed.runner import RunOptions, Simulation

ROOT = Path(__file__).resolve().parents[2]


def test_a_month_is_netted_cleared_and_paid_back_to_the_fen(tmp_path, bus_url, topic_prefix):
    scenario = load_scenario(ROOT / "scenarios" / "demo.toml")
    claims = [c for c in load_claims(scenario.sim.claims)
              if c.claim_id in ("C-001", "C-003", "C-007")]
    result = Simulation(scenario, claims, RunOptions(workdir=tmp_path, kafka=bus_url,
                                                     prefix=topic_prefix)).run()
    assert result.summary["invariant_violations"] == []
    rows = {r["region"]: r for r in result.statements if r["setlym"] == "201903"}
    assert {k: rows["360400"][k] for k in ("payable", "receivable", "paid", "disbursed",
                                           "paid_to_hospitals")} == {
        "payable": 795_000, "receivable": 643_500, "paid": 151_500, "disbursed": 0,
        "paid_to_hospitals": 643_500}
    assert {k: rows["110000"][k] for k in ("payable", "receivable", "paid", "disbursed",
                                           "paid_to_hospitals")} == {
        "payable": 643_500, "receivable": 795_000, "paid": 0, "disbursed": 151_500,
        "paid_to_hospitals": 1_024_500}
    assert rows["310000"]["payable"] == rows["310000"]["receivable"] == 0
    paid = {c["claim_id"]: (c["paid_on"], c["payback_days"]) for c in result.claims}
    assert paid == {"C-001": ("2019-05-03", (date(2019, 5, 3) - date(2019, 3, 2)).days),
                    "C-003": ("2019-05-03", (date(2019, 5, 3) - date(2019, 3, 5)).days),
                    "C-007": ("2019-05-03", (date(2019, 5, 3) - date(2019, 3, 12)).days)}
    # On the scenario's last day, 31 March, all three were still owed to the hospitals,
    # 19 to 29 days old: 7,950.00 + 6,435.00 + 2,295.00.
    assert result.summary["receivables_on"] == "2019-03-31"
    assert result.summary["receivables"] == "16680.00"
    assert result.summary["receivables_ageing_days"] == {
        "0-30": "16680.00", "31-60": "0.00", "61-90": "0.00", ">90": "0.00"}
    assert result.ok

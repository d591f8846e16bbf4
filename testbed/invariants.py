"""Checks every run ends with: money conserved, every claim accounted for once.

Asked of the nodes' read models after a run; each violation is a sentence. A run with a
violation fails (``clearsim run`` exits 1).
"""

from __future__ import annotations

from clearsim.domain.calendar import month_of
from clearsim.messages import HUB, hospitals_node, region_node
from clearsim.money import format_fen
from hospital_node import queries as hospital_queries
from hub import queries as hub_queries
from region_node import queries as region_queries


def statements(sim) -> list[dict]:
    """Per clearing window and region: the hub's position beside what the region paid,
    what it was disbursed and what it passed to its hospitals."""
    if HUB not in sim.nodes:
        return []
    passed = {}
    for code in sim.topology.regions:
        for clearing_id, paid in sim.query(region_node(code),
                                           region_queries.paid_to_hospitals).items():
            passed[(clearing_id, code)] = paid
    out = []
    for p in sim.query(HUB, hub_queries.positions_by_window):
        out.append({"setlym": p["month"], "region": p["region"], "state": p["state"],
                    "payable": p["payable"], "receivable": p["receivable"],
                    "net": p["payable"] - p["receivable"], "paid": p["paid"],
                    "disbursed": p["disbursed"],
                    "paid_to_hospitals": passed.get((p["clearing_id"], p["region"]))})
    return sorted(out, key=lambda s: (s["setlym"], s["region"]))


def cases(sim) -> list[dict]:
    """The hub's reconciliation cases, under the names of the report's ``cases.csv``."""
    if HUB not in sim.nodes:
        return []
    return [{"case_id": c["case_id"], "stmt_date": c["statement_date"].isoformat(),
             "admdvs": c["region"], "setl_id": c["settlement_id"], "claim_id": c["claim_id"],
             "cause": c["cause"], "owner": c["owner"], "repair": c["repair"],
             "state": c["state"], "resolution": c["resolution"]}
            for c in sim.query(HUB, hub_queries.reconciliation_cases)]


def hospital_differences(sim) -> list[dict]:
    """Rows a hospital's daily reconciliation with its platform found not balanced."""
    return [{"stmt_date": d["statement_date"].isoformat(), "hospital": d["hospital"],
             "setl_id": d["settlement_id"], "stmt_rslt": d["result"]}
            for code in sim.topology.hospitals
            for d in sim.query(hospitals_node(code), hospital_queries.reconciliation_differences)]


def check(sim, results: list[dict], rows: list[dict], case_rows: list[dict]) -> list[str]:
    """``rows``: the clearing statements; ``results``: the per-claim answers."""
    problems = [f"claim {r['claim_id']}: parties do not agree ({r['parties']})"
                for r in results if not r["agreed"]]
    explained = {c["claim_id"] for c in case_rows if c["state"] == "escalated"}
    problems += [f"claim {r['claim_id']}: settled across regions but never reconciled"
                 for r in results if r["status"] == "direct" and r["parties"].get("hub")
                 and r["reconciled_on"] is None and r["claim_id"] not in explained]
    problems += [f"case {c['case_id']} ({c['cause']}) is still open"
                 for c in case_rows if c["state"] == "open"]
    by_month: dict[str, list[dict]] = {}
    for row in rows:
        by_month.setdefault(row["setlym"], []).append(row)
    ledger, in_region = _hospital_ledger_by_month(sim)
    for month, regions in sorted(by_month.items()):
        paid = sum(r["paid"] or 0 for r in regions)
        disbursed = sum(r["disbursed"] or 0 for r in regions)
        if paid != disbursed:
            problems.append(f"{month}: regions paid {format_fen(paid)} but the hub disbursed "
                            f"{format_fen(disbursed)}")
        owed = sum(r["receivable"] for r in regions)
        if sum(r["payable"] for r in regions) != owed:
            problems.append(f"{month}: what insuring regions owe differs from what treating "
                            "regions are owed")
        passed = sum(r["paid_to_hospitals"] or 0 for r in regions) - in_region.get(month, 0)
        if passed != owed:
            problems.append(f"{month}: treating regions passed {format_fen(passed)} of "
                            f"cross-region money to their hospitals; the hub cleared "
                            f"{format_fen(owed)}")
        for r in regions:
            advanced, refused, upheld = ledger.get((month, r["region"]), (0, 0, 0))
            paid = r["paid_to_hospitals"] or 0
            if advanced != paid + refused - upheld:
                problems.append(
                    f"{month} {r['region']}: its hospitals advanced {format_fen(advanced)} but "
                    f"were paid back {format_fen(paid)} with {format_fen(refused)} refused "
                    f"and {format_fen(upheld)} returned on appeal")
    problems += _hospitals_paid_once_in_full(sim, set(by_month))
    problems += _no_claim_in_two_windows(sim)
    return problems


def _hospital_ledger_by_month(sim):
    """From the hospitals' own books: per (month, treating region) the fund share they
    advanced, what was refused in the month and what upheld appeals returned in it; and per
    month the net of in-region claims (the region's own money, never through the hub)."""
    out: dict[tuple[str, str], list[int]] = {}
    in_region: dict[str, int] = {}
    for code in sim.topology.hospitals:
        for c in sim.query(hospitals_node(code), hospital_queries.settled_claims):
            own = c["insuring_region"] == code
            moves = [(month_of(c["admitted_at"].date()), 0, c["fund_pay"])]
            if c["refused_on"] is not None:
                moves.append((month_of(c["refused_on"]), 1, -c["refused_amount"]))
            if c["appeal_upheld"]:
                moves.append((month_of(c["appeal_decided_on"]), 2, c["refused_amount"]))
            for month, column, amount in moves:
                out.setdefault((month, code), [0, 0, 0])[column] += abs(amount)
                if own:
                    in_region[month] = in_region.get(month, 0) + amount
    return {k: tuple(v) for k, v in out.items()}, in_region


def _hospitals_paid_once_in_full(sim, cleared_months: set[str]) -> list[str]:
    problems = []
    for code in sim.topology.hospitals:
        for c in sim.query(hospitals_node(code), hospital_queries.settled_claims):
            if month_of(c["admitted_at"].date()) not in cleared_months:
                continue
            if c["paid_amount"] != c["fund_pay"]:
                problems.append(f"claim {c['claim_id']} at {c['hospital']}: advanced "
                                f"{c['fund_pay']}, paid back {c['paid_amount']}")
    return problems


def _no_claim_in_two_windows(sim) -> list[str]:
    if HUB not in sim.nodes:
        return []
    counted = sim.query(HUB, hub_queries.claims_counted_in_windows)
    cleared = sim.query(HUB, hub_queries.cleared_claims)
    if counted != cleared:
        return [f"clearing windows count {counted} claims but {cleared} claims are "
                "marked cleared"]
    return []

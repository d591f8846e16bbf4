"""Checks every run ends with: money conserved, every claim accounted for once.

Read from the nodes' own databases after a run; each violation is a sentence. A run with a
violation fails (``clearsim run`` exits 1).
"""

from __future__ import annotations

from sqlalchemy import select

from clearsim.domain.calendar import setlym
from clearsim.messages import HUB, hospitals_node, region_node
from clearsim.money import format_fen
from hospital_node import tables as hospital_tables
from hub import tables as hub_tables
from region_node import tables as region_tables


def statements(sim) -> list[dict]:
    """Per clearing window and region: the hub's position beside what the region paid,
    what it was disbursed and what it passed to its hospitals."""
    if HUB not in sim.nodes:
        return []
    windows = {w["clearing_id"]: w for w in sim.read(HUB, select(hub_tables.clearings))}
    passed = {}
    for code in sim.topology.regions:
        for row in sim.read(region_node(code), select(region_tables.clearings)):
            passed[(row["clearing_id"], code)] = row["paid_to_hospitals"]
    out = []
    for p in sim.read(HUB, select(hub_tables.positions)):
        window = windows[p["clearing_id"]]
        out.append({"setlym": window["setlym"], "region": p["admdvs"], "state": window["state"],
                    "payable": p["payable"], "receivable": p["receivable"],
                    "net": p["payable"] - p["receivable"], "paid": p["paid"],
                    "disbursed": p["disbursed"],
                    "paid_to_hospitals": passed.get((p["clearing_id"], p["admdvs"]))})
    return sorted(out, key=lambda s: (s["setlym"], s["region"]))


def cases(sim) -> list[dict]:
    if HUB not in sim.nodes:
        return []
    return [{**c, "stmt_date": c["stmt_date"].isoformat()}
            for c in sim.read(HUB, select(hub_tables.cases).order_by(hub_tables.cases.c.case_id))]


def hospital_differences(sim) -> list[dict]:
    """Rows a hospital's daily reconciliation with its platform found not balanced."""
    out = []
    for code in sim.topology.hospitals:
        for r in sim.read(hospitals_node(code), select(hospital_tables.reconciliations)):
            for setl_id, result in sorted((r["results"] or {}).items()):
                if result:
                    out.append({"stmt_date": r["stmt_date"].isoformat(),
                                "hospital": r["hospital"], "setl_id": setl_id,
                                "stmt_rslt": result})
    return out


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
        for c in sim.read(hospitals_node(code), select(hospital_tables.claims)
                          .where(hospital_tables.claims.c.state == "settled")):
            own = c["insuring_region"] == code
            moves = [(setlym(c["begntime"].date()), 0, c["fund_pay"])]
            if c["refused_on"] is not None:
                moves.append((setlym(c["refused_on"]), 1, -c["refused_amount"]))
            if c["appeal_upheld"]:
                moves.append((setlym(c["appeal_decided_on"]), 2, c["refused_amount"]))
            for month, column, amount in moves:
                out.setdefault((month, code), [0, 0, 0])[column] += abs(amount)
                if own:
                    in_region[month] = in_region.get(month, 0) + amount
    return {k: tuple(v) for k, v in out.items()}, in_region


def _hospitals_paid_once_in_full(sim, cleared_months: set[str]) -> list[str]:
    problems = []
    for code in sim.topology.hospitals:
        for c in sim.read(hospitals_node(code), select(hospital_tables.claims)
                          .where(hospital_tables.claims.c.state == "settled")):
            if setlym(c["begntime"].date()) not in cleared_months:
                continue
            if c["paid_amount"] != c["fund_pay"]:
                problems.append(f"claim {c['claim_id']} at {c['hospital']}: advanced "
                                f"{c['fund_pay']}, paid back {c['paid_amount']}")
    return problems


def _no_claim_in_two_windows(sim) -> list[str]:
    if HUB not in sim.nodes:
        return []
    windows = sim.read(HUB, select(hub_tables.clearings))
    counted = sum(w["claims"] for w in windows)
    cleared = sim.read(HUB, select(hub_tables.claims.c.claim_id)
                       .where(hub_tables.claims.c.clearing_id.is_not(None)))
    if counted != len(cleared):
        return [f"clearing windows count {counted} claims but {len(cleared)} claims are "
                "marked cleared"]
    return []

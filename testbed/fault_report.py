"""The fault report: fault by fault and claim by claim, what broke and what it cost.

For each fault of the run: the claims (and other messages) it struck, who noticed, with
which code and how long after (simulated days and wall milliseconds), how each claim ended
against what ``clearsim settle`` says it should have (the outcome), the extra
reconciliation and payback days of the claims it struck beside the claims it did not, the
money at risk and the money finally wrong.

- Struck: the fault's "injected" events (fail points and wire faults log them).
- Noticed: the "detected" events of the claims it struck (every refusal a node records,
  every duplicate it absorbs, every recomputation that disagrees, every answer that did
  not come). A claim two faults struck is counted under both.
- Outcome, per claim: ``no effect`` (ended as ``clearsim settle`` says and nobody had to
  notice), ``absorbed`` (noticed, nothing to repair: a duplicate, a delay),
  ``resent`` / ``held and resent`` / ``reversed and re-settled`` (noticed and repaired:
  the money is right), ``fallback: manual`` (the patient was sent to manual reimbursement
  at home instead of settling directly), ``rejected``, ``unfinished``, ``settled wrong``
  (the money differs from ``clearsim settle``: only when repair is off).
- Extra days: how much later than scheduled each struck claim was reconciled (the first
  attempt, ``after_working_days`` after its settlement day) and paid back (its month's
  hospital payment day), by the simulated calendar.
- Money at risk: what the struck claims' fund pay would have been wrong by, unrepaired
  (the difference between the first settlement and the right one, where the claim was
  settled wrongly first), plus the fund pay of claims the fault stopped or diverted.
- Money finally wrong: the fund pay by which claims ended different from ``clearsim
  settle`` while settling as it says they should (zero unless repair is off).
"""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

from clearsim.domain.calendar import month_of
from clearsim.domain.clearing import clearing_dates
from clearsim.faults import Fault
from clearsim.messages import region_node
from clearsim.money import format_fen, parse_fen
from clearsim.sim.settle_cli import settle_file
from region_node import queries as region_queries

REPAIRS = (("repaired", "reversed and re-settled"), ("released", "held and resent"),
           ("resent", "resent"), ("fallback", "fallback: manual"))

CSV_COLUMNS = ("fault", "kind", "family", "target", "claim_id", "injected_on",
               "detected_on", "detected_by", "code", "detection_days", "detection_ms",
               "outcome", "expected_status", "status", "expected_fund_pay", "fund_pay",
               "wrong_by", "at_risk", "extra_reconciliation_days", "extra_payback_days")


def _fen(value: str | None) -> int:
    return 0 if value is None else parse_fen(value)


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(sum(values) / len(values), 3) if values else None


def _scheduled(sim, claim_date: date) -> tuple[date, date]:
    """When a claim settled on ``claim_date`` is reconciled and paid back when nothing goes
    wrong: the first reconciliation attempt, and its month's hospital payment day."""
    calendar = sim.scenario.sim.calendar
    reconciled = calendar.add_working_days(claim_date,
                                           sim.scenario.reconciliation.after_working_days)
    paid = clearing_dates(month_of(claim_date), calendar, sim.scenario.clearing)
    return reconciled, paid.hospital_payment


def _late(actual: str | None, scheduled: date) -> int | None:
    return None if actual is None else (date.fromisoformat(actual) - scheduled).days


def outcome(result: dict, expected: dict, events: set[str], noticed: bool) -> str:
    if result["status"] == "unfinished":
        return "unfinished"
    if expected["status"] == "direct" and result["status"] == "manual":
        return "fallback: manual"
    if result["status"] == "rejected" and expected["status"] != "rejected":
        return "rejected"
    if result["status"] == expected["status"] and (
            _fen(result["fund_pay"]) != _fen(expected["fund_pay"])
            or _fen(result["personal_pay"]) != _fen(expected["personal_pay"])):
        return "settled wrong"
    for event, name in REPAIRS:
        if event in events:
            return name
    return "absorbed" if noticed else "no effect"


def build(sim, results: list[dict]) -> list[dict]:
    """One entry per fault of the run."""
    plan = sim.plan
    if not plan:
        return []
    # Where an insuring region disagreed with a settlement: by how much it was first wrong.
    first_wrong = {d["claim_id"]: abs(d["at_risk"] or 0)
                   for code in sim.topology.regions
                   for d in sim.query(region_node(code),
                                      region_queries.settlement_disagreements)}
    expected = {a["claim_id"]: a for a in settle_file(sim.scenario, sim.claims)}
    by_claim = {r["claim_id"]: r for r in results}
    dates = {c.claim_id: c.date for c in sim.valid}
    events = plan.events()
    detected: dict[str, list] = {}
    own: dict[str, list] = {}
    seen_by_claim: dict[str, set[str]] = {}     # what happened to a claim, any fault
    for e in events:
        if e.what == "detected" and e.claim_id:
            detected.setdefault(e.claim_id, []).append(e)
        if e.fault:
            own.setdefault(e.fault, []).append(e)
        elif e.claim_id:
            seen_by_claim.setdefault(e.claim_id, set()).add(e.what)
    report = []
    for fault in plan.faults:
        report.append(_one(sim, fault, own.get(fault.id, []), detected, by_claim, expected,
                           first_wrong, dates, seen_by_claim))
    return report


def _one(sim, fault: Fault, events: list, detected: dict, by_claim: dict, expected: dict,
         first_wrong: dict, dates: dict, seen_by_claim: dict) -> dict:
    plan = sim.plan
    injected = [e for e in events if e.what == "injected"]
    claims: dict[str, object] = {}
    for e in injected:
        if e.claim_id in by_claim and e.claim_id not in claims:
            claims[e.claim_id] = e
    messages = sum(1 for e in injected if e.claim_id not in by_claim)
    rows = []
    for claim_id, first in claims.items():
        result, want = by_claim[claim_id], expected[claim_id]
        after = [d for d in detected.get(claim_id, []) if d.wall >= first.wall]
        seen = after[0] if after else None
        happened = ({e.what for e in events if e.claim_id == claim_id}
                    | seen_by_claim.get(claim_id, set()))
        end = outcome(result, want, happened, seen is not None)
        right, final = _fen(want["fund_pay"]), _fen(result["fund_pay"])
        wrong_by = abs(final - right) if end == "settled wrong" else 0
        if claim_id in first_wrong:
            at_risk = first_wrong[claim_id]
        elif end in ("settled wrong",):
            at_risk = wrong_by
        elif end in ("fallback: manual", "rejected", "unfinished", "held and resent"):
            at_risk = right
        else:
            at_risk = 0
        reconciled, paid = _scheduled(sim, dates[claim_id])
        rows.append({
            "claim_id": claim_id,
            "injected_on": first.day.isoformat() if first.day else None,
            "detected_on": seen.day.isoformat() if seen and seen.day else None,
            "detected_by": seen.node if seen else None,
            "code": seen.code if seen else None,
            "codes": sorted({d.code for d in after}),
            "detection_days": ((seen.day - first.day).days
                               if seen and seen.day and first.day else None),
            "detection_ms": round((seen.wall - first.wall) * 1000, 3) if seen else None,
            "outcome": end, "expected_status": want["status"], "status": result["status"],
            "expected_fund_pay": want["fund_pay"], "fund_pay": result["fund_pay"],
            "wrong_by": format_fen(wrong_by), "at_risk": format_fen(at_risk),
            "extra_reconciliation_days": _late(result.get("reconciled_on"), reconciled),
            "extra_payback_days": _late(result.get("paid_on"), paid),
        })
    # Faults that strike no claim (a skewed clock, a broker restart) are noticed anywhere.
    loose = [d for d in (d for ds in detected.values() for d in ds)
             if not claims and d.code in _codes_of(fault)]
    loose += [e for e in events if e.what == "detected"]
    codes: dict[str, int] = {}
    by: dict[str, int] = {}
    for row in rows:
        for code in row["codes"]:
            codes[code] = codes.get(code, 0) + 1
        if row["detected_by"]:
            by[row["detected_by"]] = by.get(row["detected_by"], 0) + 1
    for d in loose:
        codes[d.code] = codes.get(d.code, 0) + 1
        by[d.node] = by.get(d.node, 0) + 1
    outcomes: dict[str, int] = {}
    for row in rows:
        outcomes[row["outcome"]] = outcomes.get(row["outcome"], 0) + 1
    days = [r["detection_days"] for r in rows if r["detection_days"] is not None]
    wall = [r["detection_ms"] for r in rows if r["detection_ms"] is not None]
    return {
        "fault": fault.id, "kind": fault.kind, "family": fault.family,
        "target": fault.target, "describe": fault.describe(),
        "from": fault.start.isoformat() if fault.start else None,
        "until": fault.until.isoformat() if fault.until else None,
        "rate": str(fault.rate), "repair": plan.repair,
        "params": {k: (str(v) if v is not None else None) for k, v in fault.params.items()},
        "injected": len(injected), "claims_struck": len(rows), "messages_struck": messages,
        "noticed": sum(1 for r in rows if r["detected_by"]) + len(loose),
        "noticed_by": by, "codes": codes,
        "detection_days": {"mean": _mean(days), "max": max(days) if days else None},
        "detection_ms": {"mean": _mean(wall), "max": max(wall) if wall else None},
        "outcomes": outcomes,
        "extra_reconciliation_days": _mean([r["extra_reconciliation_days"] for r in rows]),
        "extra_payback_days": _mean([r["extra_payback_days"] for r in rows]),
        "money_at_risk": format_fen(sum(parse_fen(r["at_risk"]) for r in rows)),
        "money_finally_wrong": format_fen(sum(parse_fen(r["wrong_by"]) for r in rows)),
        "claims": rows,
    }


def _codes_of(fault: Fault) -> set[str]:
    return {"skew": {"CLOCK_SKEW"}, "broker_restart": {"BROKER_UNAVAILABLE"}}.get(fault.kind,
                                                                                 set())


def write(report: list[dict], out: Path) -> None:
    (out / "faults.json").write_text(json.dumps(report, indent=2) + "\n")
    with (out / "faults.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for fault in report:
            for row in fault["claims"] or [{}]:
                writer.writerow({"fault": fault["fault"], "kind": fault["kind"],
                                 "family": fault["family"], "target": fault["target"],
                                 **{k: row.get(k) for k in CSV_COLUMNS[4:]}})


def render(report: list[dict]) -> list[str]:
    if not report:
        return []
    lines = ["", "  faults:"]
    for f in report:
        lines.append(f"  - {f['describe']}")
        codes = ", ".join(f"{c} x{n}" for c, n in sorted(f["codes"].items())) or "none"
        by = ", ".join(sorted(f["noticed_by"])) or "nobody"
        lines.append(f"      struck {f['claims_struck']} claims and {f['messages_struck']} "
                     f"other messages; noticed by {by} with {codes}")
        if f["detection_days"]["mean"] is not None:
            lines.append(f"      detection: mean {f['detection_days']['mean']} simulated "
                         f"days, {f['detection_ms']['mean']} ms (max "
                         f"{f['detection_ms']['max']} ms)")
        outcomes = ", ".join(f"{o} {n}" for o, n in sorted(f["outcomes"].items())) or "-"
        lines.append(f"      outcome: {outcomes}; repair {'on' if f['repair'] else 'OFF'}")
        extra = []
        if f["extra_reconciliation_days"] is not None:
            extra.append(f"reconciliation {f['extra_reconciliation_days']:+}")
        if f["extra_payback_days"] is not None:
            extra.append(f"payback {f['extra_payback_days']:+}")
        lines.append(f"      money at risk {f['money_at_risk']}, finally wrong "
                     f"{f['money_finally_wrong']}"
                     + (f"; days later than scheduled (mean): {', '.join(extra)}"
                        if extra else ""))
    return lines

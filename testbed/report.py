"""What each party recorded of each claim, whether they agree, and the run's summary.

Per claim the answer has the shape of ``clearsim settle --json`` (SCENARIO.md) plus the
state each party holds (hospital, treating region, hub, insuring region), whether those
agree, and the wall-clock settlement latency. ``summary.json`` and ``claims.json`` /
``claims.csv`` go to ``--out DIR``. These are for people: they name claims by claim id and
carry no person id; a person id that a node's message mentions (``person 'P-1' is not
insured``) is masked to its last four characters (``clearsim.privacy``), here and in what is
printed.
"""

from __future__ import annotations

import csv
import json
import resource
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from clearsim.messages import HUB, hospitals_node, region_node
from clearsim.privacy import Masker
from clearsim.money import format_fen, parse_fen
from clearsim.sim.claims import Claim
from hospital_node import queries as hospital_queries
from hub import queries as hub_queries
from region_node import queries as region_queries
from testbed import delivery, fault_report, invariants

# Each party's states, mapped to the claim's outcome. A party that holds no row for a
# claim is not a party to it (an in-region claim never reaches the hub).
OUTCOME = {
    "hospital": {"settled": "direct", "manual": "manual", "rejected": "rejected",
                 "failed": "rejected"},
    "treating_region": {"confirmed": "direct", "mismatch": "direct", "refused": "manual",
                        "rejected": "rejected", "failed": "rejected"},
    "hub": {"confirmed": "direct", "mismatch": "direct", "refused": "manual",
            "rejected": "rejected", "failed": "rejected"},
    "insuring_region": {"settled": "direct", "mismatch": "direct", "manual": "manual",
                        "rejected": "rejected", "refused": "manual"},
}
AMOUNT_KEYS = ("total", "in_scope", "deductible", "fund_pay", "personal_pay")
DISTRIBUTIONS = ("latency_ms", "reconciliation_latency_days", "reconciliation_latency_ms",
                 "payback_ms", "payback_days")


@dataclass
class RunResult:
    claims: list[dict]
    summary: dict
    statements: list[dict] = field(default_factory=list)
    cases: list[dict] = field(default_factory=list)
    faults: list[dict] = field(default_factory=list)       # testbed.fault_report
    delivery: dict = field(default_factory=dict)           # testbed.delivery
    persons: frozenset = frozenset()                       # person ids, to mask in text

    @property
    def masker(self) -> Masker:
        return Masker(self.persons)

    @property
    def ok(self) -> bool:
        """Every party agrees on every claim (or a fault explains why not), the money
        invariants hold and the delivery check passes."""
        explained = {c["claim_id"] for f in self.faults for c in f["claims"]}
        return (all(c["agreed"] or c["claim_id"] in explained for c in self.claims)
                and not self.summary["invariant_violations"]
                and self.delivery.get("ok", True))


def _by_claim(sim, node_id: str, query) -> dict:
    """A node's records of claims, by claim id (none from a node the run does not have)."""
    if node_id not in sim.nodes:
        return {}
    return {row["claim_id"]: row for row in sim.query(node_id, query)}


def collect(sim, wall_seconds: float) -> RunResult:
    hub_claims = _by_claim(sim, HUB, hub_queries.claim_records)
    treated, insured, hospital = {}, {}, {}
    for code in sim.topology.regions:
        treated.update(_by_claim(sim, region_node(code), region_queries.treated_records))
        insured.update(_by_claim(sim, region_node(code), region_queries.insured_records))
    for code in sim.topology.hospitals:
        hospital.update(_by_claim(sim, hospitals_node(code), hospital_queries.claim_records))
    results = []
    for claim in sim.claims:
        if not isinstance(claim, Claim):
            results.append(_refused_before(claim.claim_id, claim.rejection.as_dict()))
        elif claim.hospital not in sim.scenario.hospitals:
            results.append(_refused_before(claim.claim_id, {
                "code": "HOSPITAL_UNKNOWN", "node": "sim", "field": "hospital",
                "message": f"hospital {claim.hospital!r} is not in the scenario"}))
        else:
            cid = claim.claim_id
            results.append(claim_result(cid, hospital.get(cid), treated.get(cid),
                                        hub_claims.get(cid), insured.get(cid)))
    rows = invariants.statements(sim)
    cases = invariants.cases(sim)
    summary = summarise(sim, results, wall_seconds)
    summary["reconciliation_cases"] = {
        state: {cause: sum(1 for c in cases if c["state"] == state and c["cause"] == cause)
                for cause in sorted({c["cause"] for c in cases if c["state"] == state})}
        for state in sorted({c["state"] for c in cases})}
    summary.update(receivables(sim, hospital.values()))
    refused = [h for h in hospital.values() if h.get("refused_on") is not None]
    summary["refused"] = format_fen(sum(h["refused_amount"] for h in refused))
    summary["refusals"] = len(refused)
    summary["appeals_upheld"] = format_fen(sum(h["refused_amount"] for h in refused
                                               if h["appeal_upheld"]))
    summary["hospital_reconciliation_differences"] = invariants.hospital_differences(sim)
    summary["invariant_violations"] = invariants.check(sim, results, rows, cases)
    faults = fault_report.build(sim, results)
    checked = delivery.check(sim, results)
    summary["delivery"] = {k: v for k, v in checked.as_dict().items()
                           if k in ("ok", "sent", "handled", "refused")}
    summary["delivery_problems"] = checked.problems()
    if faults:
        summary["faults"] = [{k: v for k, v in f.items() if k != "claims"} for f in faults]
    return RunResult(results, summary, rows, cases, faults, checked.as_dict(),
                     frozenset(c.person.id for c in sim.valid))


AGEING = (("0-30", 30), ("31-60", 60), ("61-90", 90), (">90", None))


def horizon(sim) -> date:
    """The business day the run reports receivables on: the scenario's last simulated day,
    or the last claim's day when claims run later."""
    end = sim.scenario.sim.start + timedelta(days=sim.scenario.sim.days - 1)
    return max([end] + [c.date for c in sim.valid])


def receivables(sim, hospital_rows) -> dict:
    """What hospitals had advanced and not yet been paid back on the horizon day, by
    hospital and by age (DOMAIN.md §6, slow payback)."""
    on = horizon(sim)
    ageing = {name: 0 for name, _ in AGEING}
    by_hospital: dict[str, int] = {}
    for row in hospital_rows:
        day = row["admitted_at"].date()
        if row["state"] != "settled" or day > on or (row["paid_on"] and row["paid_on"] <= on):
            continue
        age = (on - day).days
        bucket = next(name for name, limit in AGEING if limit is None or age <= limit)
        ageing[bucket] += row["fund_pay"]
        by_hospital[row["hospital"]] = by_hospital.get(row["hospital"], 0) + row["fund_pay"]
    return {"receivables_on": on.isoformat(),
            "receivables": format_fen(sum(by_hospital.values())),
            "receivables_by_hospital": {h: format_fen(v) for h, v in sorted(by_hospital.items())},
            "receivables_ageing_days": {k: format_fen(v) for k, v in ageing.items()}}


def _refused_before(claim_id: str, error: dict) -> dict:
    """A claim refused by the runner itself: it never entered the network."""
    return {"claim_id": claim_id, "status": "rejected", **{k: None for k in AMOUNT_KEYS},
            "ratio": None, "tier": None, "error": error, "parties": {}, "agreed": True,
            "latency_ms": None, "paid_on": None, "payback_days": None, "payback_ms": None,
            "reconciled_on": None,
            "reconciliation_latency_days": None, "reconciliation_latency_ms": None}


def claim_result(claim_id: str, hospital, treated, hub, insured) -> dict:
    parties = {name: row["state"] for name, row in (
        ("hospital", hospital), ("treating_region", treated), ("hub", hub),
        ("insuring_region", insured)) if row is not None}
    outcomes = {OUTCOME[name].get(state, f"unfinished:{state}")
                for name, state in parties.items()}
    status = OUTCOME["hospital"].get(hospital["state"]) if hospital else None
    settlement = None
    if status == "direct" and treated is not None:
        settlement = treated["settlement"]
    elif status == "manual" and insured is not None:
        settlement = insured["settlement"]
    error = None
    if status == "rejected":
        error = hospital["error"]
        answer_total = format_fen(hospital["total"])
    answer = {"claim_id": claim_id, "status": status or "unfinished"}
    for key in AMOUNT_KEYS:
        answer[key] = settlement[key] if settlement else None
    if status == "rejected":
        answer["total"] = answer_total
    answer.update({
        "class_c": settlement["class_c"] if settlement else None,
        "ratio": settlement["ratio"] if settlement else None,
        "tier": settlement["tier"] if settlement else None,
        "policy_version": settlement["policy_version"] if settlement else None,
        "error": error,
    })
    amounts_agree = _amounts_agree(status, hospital, treated, hub, insured, settlement)
    answer["parties"] = parties
    answer["agreed"] = len(outcomes) == 1 and status is not None and amounts_agree
    if treated is not None and treated.get("agreed") is False:
        answer["reconciliation_cause"] = (treated.get("error") or {}).get("code")
    answer["latency_ms"] = _latency_ms(hospital)
    answer["reconciled_on"] = None
    answer["reconciliation_latency_days"] = None
    answer["reconciliation_latency_ms"] = None
    if hub is not None and hub.get("reconciled_on") is not None:
        answer["reconciled_on"] = hub["reconciled_on"].isoformat()
        answer["reconciliation_latency_days"] = (hub["reconciled_on"] - hub["settled_on"]).days
        answer["reconciliation_latency_ms"] = round(
            (hub["reconciled_at"] - hub["settled_at"]).total_seconds() * 1000, 3)
    answer["paid_on"] = None
    answer["payback_days"] = None
    answer["payback_ms"] = None
    if hospital is not None and hospital.get("paid_on") is not None:
        answer["paid_on"] = hospital["paid_on"].isoformat()
        answer["payback_days"] = (hospital["paid_on"] - hospital["admitted_at"].date()).days
        answer["payback_ms"] = round(
            (hospital["paid_at"] - hospital["answered_at"]).total_seconds() * 1000, 3)
    return answer


def _amounts_agree(status, hospital, treated, hub, insured, settlement) -> bool:
    if status == "direct":
        fund = parse_fen(settlement["fund_pay"])
        held = [hospital["fund_pay"]]
        held += [hub["fund_pay"]] if hub is not None else []
        held += [insured["fund_pay"]] if insured is not None else []
        return all(value == fund for value in held)
    if status == "manual":
        return hospital["personal_pay"] == hospital["total"] and hospital["fund_pay"] == 0
    return True


def _latency_ms(hospital) -> float | None:
    if not hospital or hospital["answered_at"] is None:
        return None
    return (hospital["answered_at"] - hospital["submitted_at"]).total_seconds() * 1000


def percentiles(values: list[float]) -> dict:
    """mean, p50, p90, p99, max by nearest rank; empty when there are no values."""
    if not values:
        return {}
    ordered = sorted(values)

    def rank(percent: float) -> float:
        index = max(0, min(len(ordered) - 1, -(-len(ordered) * percent // 100) - 1))
        return ordered[int(index)]
    return {"mean": round(sum(ordered) / len(ordered), 3), "p50": round(rank(50), 3),
            "p90": round(rank(90), 3), "p99": round(rank(99), 3), "max": round(ordered[-1], 3)}


def _share(part: int, whole: int) -> str | None:
    """part / whole as a decimal string with four places, exact (half-up)."""
    if not whole:
        return None
    return str((Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"), ROUND_HALF_UP))


def summarise(sim, results: list[dict], wall_seconds: float) -> dict:
    def total(key: str) -> str:
        return format_fen(sum(parse_fen(r[key]) for r in results if r[key] is not None))

    direct = [r for r in results if r["status"] == "direct"]
    charges = sum(parse_fen(r["total"]) for r in direct)
    in_scope = sum(parse_fen(r["in_scope"]) for r in direct)
    fund = sum(parse_fen(r["fund_pay"]) for r in direct)
    class_c = sum(parse_fen(r["class_c"]) for r in direct if r.get("class_c"))
    rejections: dict[str, int] = {}
    for key, count in sim.counts.counts.items():
        if key.startswith("rejected."):
            rejections[key.removeprefix("rejected.")] = count
    return {
        "scenario": str(sim.scenario.path),
        "bus": f"kafka {sim.options.kafka}" if sim.options.kafka else "in-process",
        "database": "postgresql" if sim.options.postgres else "sqlite",
        "topic_prefix": sim.prefix,
        "nodes": len(sim.nodes),
        "claims": len(results),
        "direct": sum(r["status"] == "direct" for r in results),
        "manual": sum(r["status"] == "manual" for r in results),
        "rejected": sum(r["status"] == "rejected" for r in results),
        "unfinished": sum(r["status"] == "unfinished" for r in results),
        "agreed": sum(bool(r["agreed"]) for r in results),
        "charges": total("total"),
        # DOMAIN.md §7's figures, over direct settlements: the share of charges outside the
        # catalog, and the reimbursement ratio as seed 004 defines it (fund pay / in scope).
        "class_c_share": _share(class_c, charges),
        "reimbursement_ratio": _share(fund, in_scope),
        "fund_pay": total("fund_pay"),
        "personal_pay": total("personal_pay"),
        "settlement_latency_ms": percentiles(
            [r["latency_ms"] for r in results if r["latency_ms"] is not None]),
        "reconciliation_latency_days": percentiles(
            [r["reconciliation_latency_days"] for r in results
             if r["reconciliation_latency_days"] is not None]),
        "reconciliation_latency_ms": percentiles(
            [r["reconciliation_latency_ms"] for r in results
             if r["reconciliation_latency_ms"] is not None]),
        "payback_days": percentiles(
            [r["payback_days"] for r in results if r["payback_days"] is not None]),
        "payback_ms": percentiles(
            [r["payback_ms"] for r in results if r["payback_ms"] is not None]),
        "messages_in": sim.counts.counts["messages_in"],
        "messages_out": sim.counts.counts["messages_out"],
        "duplicates_absorbed": sim.counts.counts["duplicates"],
        "rejections_by_code": rejections,
        "wall_seconds": round(wall_seconds, 3),
        **throughput(sim, len(results)),
    }


def throughput(sim, claims: int) -> dict:
    """How fast the claims went: wall seconds from the first claim submitted to the last
    one finished, claims per second over them, and the run's peak memory."""
    out: dict = {"peak_rss_mib": round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if sim.first_submitted is not None and sim.claims_done is not None:
        seconds = max(sim.claims_done - sim.first_submitted, 1e-6)
        out["claims_seconds"] = round(seconds, 3)
        out["claims_per_second"] = round(claims / seconds, 2)
    return out


def write(result: RunResult, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    masker = result.masker
    result = RunResult([_masked_claim(masker, c) for c in result.claims],
                       masker.value(result.summary),
                       result.statements, masker.value(result.cases),
                       masker.value(result.faults), masker.value(result.delivery))
    if result.faults:
        fault_report.write(result.faults, out)
    (out / "delivery.json").write_text(json.dumps(result.delivery, indent=2) + "\n")
    (out / "summary.json").write_text(json.dumps(result.summary, indent=2) + "\n")
    (out / "claims.json").write_text(json.dumps(result.claims, indent=2, default=str) + "\n")
    with (out / "clearing.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["setlym", "region", "state", "payable",
                                                "receivable", "net", "paid", "disbursed",
                                                "paid_to_hospitals"])
        writer.writeheader()
        for row in result.statements:
            writer.writerow({k: format_fen(v) if isinstance(v, int) else v
                             for k, v in row.items()})
    with (out / "distributions.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["metric", "count", "mean", "p50", "p90", "p99", "max"])
        for metric in DISTRIBUTIONS:
            values = [r[metric] for r in result.claims if r.get(metric) is not None]
            stats = percentiles(values)
            writer.writerow([metric, len(values)] + [stats.get(k) for k in
                                                     ("mean", "p50", "p90", "p99", "max")])
    with (out / "cases.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["case_id", "stmt_date", "admdvs", "setl_id",
                                                "claim_id", "cause", "owner", "repair",
                                                "state", "resolution"])
        writer.writeheader()
        writer.writerows(result.cases)
    columns = ["claim_id", "status", *AMOUNT_KEYS, "ratio", "tier", "policy_version",
               "error_code", "hospital", "treating_region", "hub", "insuring_region",
               "agreed", "latency_ms", "reconciled_on", "reconciliation_latency_days",
               "reconciliation_latency_ms", "paid_on", "payback_days", "payback_ms"]
    with (out / "claims.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for r in result.claims:
            writer.writerow({**{k: r.get(k) for k in columns if k in r},
                             "error_code": (r["error"] or {}).get("code"),
                             **{p: r["parties"].get(p) for p in
                                ("hospital", "treating_region", "hub", "insuring_region")}})


def _masked_claim(masker: Masker, claim: dict) -> dict:
    """A claim's result with person ids masked: only its error's sentence is free text
    (ids, states and amounts are not persons'), so only that is looked at."""
    error = claim.get("error")
    if not error or not error.get("message"):
        return claim
    return {**claim, "error": {**error, "message": masker.text(error["message"])}}


SHOWN_CLAIMS = 50          # rows of the per-claim table printed; every claim is in claims.csv
SHOWN_CLEARINGS = 40       # rows of clearing statements printed; all are in clearing.csv


def render(result: RunResult) -> str:
    """The run's report as printed, person ids masked."""
    return result.masker.text(_render(result))


def _render(result: RunResult) -> str:
    s = result.summary
    lat = s["settlement_latency_ms"]
    lines = [
        f"clearsim run: {s['scenario']} on the {s['bus']} bus, {s['database']} databases, "
        f"{s['nodes']} nodes",
        f"  claims {s['claims']}: direct {s['direct']}, manual {s['manual']}, "
        f"rejected {s['rejected']}, unfinished {s['unfinished']}",
        f"  parties agree on {s['agreed']} of {s['claims']} claims",
        f"  charges {s['charges']}  fund pay {s['fund_pay']}  personal pay {s['personal_pay']}",
        f"  outside the catalog {s['class_c_share']} of charges; reimbursement ratio "
        f"{s['reimbursement_ratio']} (fund pay / in scope, direct settlements)",
    ]
    if lat:
        lines.append(f"  settlement latency ms: mean {lat['mean']}  p50 {lat['p50']}  "
                     f"p99 {lat['p99']}  max {lat['max']}")
    rec = s["reconciliation_latency_days"]
    if rec:
        lines.append(f"  three-party reconciliation days: mean {rec['mean']}  p50 {rec['p50']}  "
                     f"p90 {rec['p90']}  max {rec['max']}; cases {s['reconciliation_cases'] or 'none'}")
    pay = s["payback_days"]
    if pay:
        lines.append(f"  payback days (settlement to hospital paid back): mean {pay['mean']}  "
                     f"p50 {pay['p50']}  p90 {pay['p90']}  max {pay['max']}")
    lines.append(f"  hospitals and platforms: {len(s['hospital_reconciliation_differences'])} "
                 f"settlements differed and were sent again")
    lines.append(f"  audit: {s['refusals']} refusals, {s['refused']} refused, "
                 f"{s['appeals_upheld']} returned on appeal")
    lines.append(f"  receivables on {s['receivables_on']}: {s['receivables']} "
                 f"(by age in days: {s['receivables_ageing_days']})")
    for row in result.statements[:SHOWN_CLEARINGS]:
        lines.append(f"  clearing {row['setlym']} {row['region']}: payable "
                     f"{format_fen(row['payable'])}  receivable {format_fen(row['receivable'])}  "
                     f"paid {format_fen(row['paid'] or 0)}  disbursed "
                     f"{format_fen(row['disbursed'] or 0)}  to hospitals "
                     f"{format_fen(row['paid_to_hospitals'] or 0)}")
    if len(result.statements) > SHOWN_CLEARINGS:
        lines.append(f"  ... and {len(result.statements) - SHOWN_CLEARINGS:,} more clearing "
                     "statements (all of them in clearing.csv)")
    for problem in s["invariant_violations"]:
        lines.append(f"  INVARIANT VIOLATED: {problem}")
    d = s["delivery"]
    lines.append(f"  delivery check: {'passed' if d['ok'] else 'FAILED'} ({d['sent']} sent, "
                 f"{d['handled']} handled, {d['refused']} refused with a code)")
    for problem in s["delivery_problems"]:
        lines.append(f"  DELIVERY: {problem}")
    lines.append(f"  messages in {s['messages_in']}, out {s['messages_out']}, "
                 f"redeliveries absorbed {s['duplicates_absorbed']}, "
                 f"rejections {sum(s['rejections_by_code'].values())} "
                 f"{s['rejections_by_code'] or ''}".rstrip())
    lines.append(f"  wall time {s['wall_seconds']} s")
    lines += fault_report.render(result.faults)
    lines.append("")
    width = max([len(r["claim_id"]) for r in result.claims] + [5])
    lines.append(f"  {'claim':<{width}}  {'status':<8} {'total':>12} {'fund pay':>12} "
                 f"{'personal':>12}  parties")
    rows = result.claims
    if len(rows) > SHOWN_CLAIMS:     # those the parties disagree on first, then the rest
        rows = sorted(rows, key=lambda r: r["agreed"])[:SHOWN_CLAIMS]
    for r in rows:
        parties = " ".join(f"{k.split('_')[0]}={v}" for k, v in r["parties"].items())
        note = "" if r["agreed"] else "  DISAGREE"
        code = f"  {r['error']['code']}" if r.get("error") else ""
        lines.append(f"  {r['claim_id']:<{width}}  {r['status']:<8} {r['total'] or '-':>12} "
                     f"{r['fund_pay'] or '-':>12} {r['personal_pay'] or '-':>12}  "
                     f"{parties}{code}{note}")
    if len(result.claims) > SHOWN_CLAIMS:
        lines.append(f"  ... and {len(result.claims) - SHOWN_CLAIMS:,} more claims (every claim "
                     "in claims.csv and claims.json)")
    return "\n".join(lines)

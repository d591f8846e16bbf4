"""``clearsim settle``: the offline calculator integrators check their systems against."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from clearsim.domain.settlement import (MANUAL, REJECTED, Settlement, YearToDate, choose_tier,
                                        settle)
from clearsim.errors import ClearsimError, ErrorCode, Rejection
from clearsim.money import format_fen, parse_fen
from clearsim.sim.claims import Claim, RejectedClaim, load_claims
from clearsim.sim.files import print_out
from clearsim.sim.scenario import Scenario, load_scenario


def settle_claim(claim: Claim, scenario: Scenario, ytd: YearToDate) -> Settlement:
    """Look up hospital, regions and policy; settle; add the fund pay to the person's year."""
    total = sum(item.amount for item in claim.items)

    def refused(code: ErrorCode, message: str, field: str) -> Settlement:
        return Settlement(REJECTED, total, error=Rejection(code, message, field))

    hospital = scenario.hospitals.get(claim.hospital)
    if hospital is None:
        return refused(ErrorCode.HOSPITAL_UNKNOWN,
                       f"hospital {claim.hospital!r} is not in the scenario", "hospital")
    person = claim.person
    insuring = scenario.regions.get(person.insuring_region)
    if insuring is None:
        return refused(ErrorCode.REGION_UNKNOWN,
                       f"insuring region {person.insuring_region!r} is not in the scenario",
                       "person.insuring_region")
    if insuring.policy is None:
        return refused(ErrorCode.POLICY_MISSING,
                       f"region {insuring.code} has no policy", "person.insuring_region")
    choice = choose_tier(insuring_region=insuring.code, treating_region=hospital.region,
                         hospital_level=hospital.level, filing=person.filing)
    catalog = (insuring.catalog if choice.mode == MANUAL
               else scenario.regions[hospital.region].catalog)
    year = claim.date.year
    result = settle(items=claim.items, catalog=catalog, policy=insuring.policy,
                    insurance=person.insurance, choice=choice,
                    cap_used=ytd.used(person.id, person.insurance, year))
    if result.status != REJECTED:
        ytd.add(person.id, person.insurance, year, result.fund_pay)
    return result


def _money(fen: int | None) -> str | None:
    return None if fen is None else format_fen(fen)


def answer_for(claim: Claim | RejectedClaim | str, s: Settlement) -> dict:
    """One claim's answer in the SCENARIO.md format (plus every intermediate amount).
    ``claim`` is the claim (parsed or refused) or just its id."""
    claim_id = claim if isinstance(claim, str) else claim.claim_id
    if s.status == REJECTED:
        amounts = dict.fromkeys(("total", "in_scope", "deductible", "ratio", "fund_pay",
                                 "personal_pay", "tier", "class_a", "class_b", "class_c",
                                 "b_selfpay", "policy_region", "policy_version",
                                 "cap_left_before"))
        amounts["total"] = format_fen(s.total)
    else:
        amounts = {
            "total": format_fen(s.total), "in_scope": format_fen(s.in_scope),
            "deductible": format_fen(s.deductible), "ratio": str(s.ratio),
            "fund_pay": format_fen(s.fund_pay), "personal_pay": format_fen(s.personal_pay),
            "tier": s.tier, "class_a": format_fen(s.class_a), "class_b": format_fen(s.class_b),
            "class_c": format_fen(s.class_c), "b_selfpay": format_fen(s.b_selfpay),
            "policy_region": s.policy_region, "policy_version": s.policy_version,
            "cap_left_before": _money(s.cap_left_before),
        }
    error = None if s.error is None else {"code": s.error.code.value,
                                          "message": s.error.message, "field": s.error.field}
    head = {"claim_id": claim_id, "status": s.status}
    order = ("total", "in_scope", "deductible", "ratio", "fund_pay", "personal_pay", "tier")
    return {**head, **{k: amounts[k] for k in order}, "error": error,
            **{k: v for k, v in amounts.items() if k not in order}}


def settle_file(scenario: Scenario, claims: list) -> list[dict]:
    ytd = YearToDate()
    answers = []
    for claim in claims:
        if isinstance(claim, RejectedClaim):
            answer = answer_for(claim, Settlement(REJECTED, 0, error=claim.rejection))
            answer["total"] = None
            answers.append(answer)
        else:
            answers.append(answer_for(claim, settle_claim(claim, scenario, ytd)))
    return answers


def render_table(answers: list[dict]) -> str:
    cols = [("claim", "claim_id", "<"), ("status", "status", "<"), ("total", "total", ">"),
            ("in scope", "in_scope", ">"), ("deductible", "deductible", ">"),
            ("ratio", "ratio", ">"), ("fund pay", "fund_pay", ">"),
            ("personal", "personal_pay", ">"), ("tier", "tier", "<")]
    rows = [[str(a[key]) if a[key] is not None else "-" for _, key, _ in cols] for a in answers]
    widths = [max([len(title)] + [len(r[i]) for r in rows]) for i, (title, _, _) in
              enumerate(cols)]

    def line(cells):
        return "  ".join(f"{c:{align}{w}}" for c, (_, _, align), w in zip(cells, cols,
                                                                           widths)).rstrip()
    out = [line([title for title, _, _ in cols]), line(["-" * w for w in widths])]
    for answer, row in zip(answers, rows):
        out.append(line(row))
        if answer["error"]:
            e = answer["error"]
            out.append(f"    {e['code']} ({e['field']}): {e['message']}")
    settled = [a for a in answers if a["status"] != REJECTED]

    def sum_of(key: str) -> str:
        return format_fen(sum(parse_fen(a[key]) for a in settled))
    counts = {s: sum(a["status"] == s for a in answers) for s in ("direct", "manual", "rejected")}
    noun = "claim" if len(answers) == 1 else "claims"
    out.append(f"{len(answers)} {noun}: {counts['direct']} direct, {counts['manual']} manual, "
               f"{counts['rejected']} rejected; settled (direct and manual): total "
               f"{sum_of('total')}, fund pay {sum_of('fund_pay')}, "
               f"personal pay {sum_of('personal_pay')}")
    return "\n".join(out)


def add_parser(sub) -> None:
    p = sub.add_parser("settle", help="settle claims offline, exactly, and explain each",
                       description="Settle every claim of a claims file by the rule "
                                   "treating-region catalog, insuring-region policy.")
    p.add_argument("--scenario", type=Path, required=True, help="scenario TOML file")
    p.add_argument("--claims", type=Path, required=True, help="claims JSON file")
    p.add_argument("--json", action="store_true", help="print the answer as a JSON array")
    p.set_defaults(handler=main)


def main(args) -> int:
    """Exit status 0 with every claim answered (a refused claim is an answer), 2 when the
    scenario or the claims file cannot be read. Output into a pipe that closes early (``|
    head``) ends quietly; Ctrl-C ends with 130 (``testbed.cli``)."""
    try:
        scenario = load_scenario(args.scenario)
        claims = load_claims(args.claims)
    except ClearsimError as exc:
        message = " ".join(exc.rejection.message.split())
        print(f"clearsim: {exc.code.value}: {message}", file=sys.stderr)
        return 2
    answers = settle_file(scenario, claims)
    print_out(json.dumps(answers, indent=2, ensure_ascii=False) if args.json
              else render_table(answers))
    return 0

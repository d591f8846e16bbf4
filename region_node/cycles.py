"""A region's business cycles: daily reconciliation and monthly clearing.

Reconciliation in both directions: with the hub (the hub asks, 3201 then 3202, and this
region answers by its own ledgers in both its roles) and with its hospitals (each hospital
asks, and the region's record is authoritative: a differing row is sent to the hospital
again). Clearing: the region confirms and pays by its own ledgers, and passes what it is
disbursed on to its hospitals, less refusals and plus upheld appeals.
"""

from __future__ import annotations

from clearsim import wire
from clearsim.domain.calendar import month_of, start_of
from clearsim.domain.clearing import clearing_dates
from clearsim.domain.reconciliation import (DATA_DIFFER, PLATFORM_MORE, Row, Totals,
                                            compare_details, totals)
from clearsim.messages import HUB, Message, Outgoing, hospitals_node
from clearsim.senders import speaks_for_hospital
from region_node import tables
from region_node.common import RegionContext
from region_node.tables import Role
from region_node.treating import settlement_answered


# -- daily three-party reconciliation ------------------------------------------------

def _treated_row(claim) -> Row:
    return Row(claim["settlement_id"], claim["settlement"]["total"],
               claim["settlement"]["fund_pay"])


def _own_rows(ctx: RegionContext, day) -> dict[str, Row]:
    """This region's ledger of a day's cross-region settlements, in both its roles."""
    rows = {c["settlement_id"]: _treated_row(c)
            for c in tables.answered_treated(ctx.conn, day=day, other_insuring=ctx.me)}
    for c in tables.recorded_insured(ctx.conn, day=day, other_treating=ctx.me):
        rows[c["settlement_id"]] = Row(c["settlement_id"], c["total"], c["fund_pay"])
    return rows


def _hospital_rows(ctx: RegionContext, hospital: str, day) -> dict[str, Row]:
    """This region's record of one of its hospitals' settlements of a day."""
    return {c["settlement_id"]: _treated_row(c)
            for c in tables.answered_treated(ctx.conn, day=day, hospital=hospital)}


def _period(body: dict) -> dict:
    return {k: body[k] for k in ("settling_party", "period_start", "period_end")}


def totals_reconciled(period: dict, own: Totals, theirs: dict) -> dict:
    """Our totals of a period beside theirs: result "0" when all three figures agree."""
    balanced = ((own.count, own.total, own.fund_pay)
                == (theirs["settlement_count"], theirs["total"], theirs["fund_pay"]))
    return {**period, "total": own.total, "fund_pay": own.fund_pay, "account_pay": 0,
            "settlement_count": own.count, "result": "0" if balanced else "1"}


def details_reconciled(period: dict, results: dict[str, int]) -> dict:
    return {**period, "rows": [{"settlement_id": k, "result": v} for k, v in results.items()]}


def _rows_of(body: dict) -> dict[str, Row]:
    return {r["settlement_id"]: Row(r["settlement_id"], r["total"], r["fund_pay"])
            for r in body["rows"]}


def _own_hospital(msg: Message, ctx: RegionContext) -> None:
    """A hospital node reconciles only for hospitals of its region (ours)."""
    speaks_for_hospital(msg, msg.body["settling_party"], ctx.config.hospitals, ctx.me,
                        wire.national("settling_party"))


def hospital_totals(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """A hospital reconciles its day with its platform (3201, institution -> platform)."""
    body = msg.body
    _own_hospital(msg, ctx)
    own = totals(_hospital_rows(ctx, body["settling_party"], body["period_start"]).values())
    return [Outgoing("TotalsReconciled", msg.sender, msg.correlation_id,
                     totals_reconciled(_period(body), own, body))]


def hospital_details(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """Row by row (3202); where the hospital lacks a settlement or holds other amounts, the
    platform's record is sent to it again (the platform's record is authoritative)."""
    body = msg.body
    _own_hospital(msg, ctx)
    results = compare_details(_hospital_rows(ctx, body["settling_party"],
                                             body["period_start"]), _rows_of(body))
    out = [Outgoing("DetailsReconciled", msg.sender, msg.correlation_id,
                    details_reconciled(_period(body), results))]
    for settlement_id, result in results.items():
        if result in (PLATFORM_MORE, DATA_DIFFER):
            claim = tables.treated_by_settlement(ctx.conn, settlement_id)
            out.append(settlement_answered(ctx, claim, claim["settlement"], result_code=0,
                                           error=None))
    return out


def hub_totals(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """The hub reconciles a day's cross-region settlements with us, in both our roles."""
    body = msg.body
    own = totals(_own_rows(ctx, body["period_start"]).values())
    return [Outgoing("TotalsReconciled", HUB, msg.correlation_id, totals_reconciled(
        {**_period(body), "settling_party": ctx.me}, own, body))]


def hub_details(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    body = msg.body
    results = compare_details(_rows_of(body), _own_rows(ctx, body["period_start"]))
    return [Outgoing("DetailsReconciled", HUB, msg.correlation_id,
                     details_reconciled({**_period(body), "settling_party": ctx.me}, results))]


# -- monthly clearing ----------------------------------------------------------------

def _own_position(ctx: RegionContext, month: str) -> tuple[int, int]:
    """(payable, receivable) of a month by this region's own ledgers, cross-region only."""
    payable = sum(c["fund_pay"] for c in tables.recorded_insured(
        ctx.conn, month=month, other_treating=ctx.me))
    receivable = sum(_treated_row(c).fund_pay for c in tables.answered_treated(
        ctx.conn, month=month, other_insuring=ctx.me))
    for r in tables.refusals_in(ctx.conn, month, (Role.INSURING, Role.TREATING)):
        if r["role"] == Role.INSURING:
            payable += _refusal_change(r, month)
        else:
            receivable += _refusal_change(r, month)
    return payable, receivable


def _refusal_change(refusal, month: str) -> int:
    """What a refusal changes in a month's clearing: deducted in the month it was decided,
    returned in the month an appeal against it was upheld."""
    change = -refusal["amount"] if month_of(refusal["refused_on"]) == month else 0
    if refusal["upheld"] and month_of(refusal["decided_on"]) == month:
        change += refusal["amount"]
    return change


def clearing_amount(notice: dict, amount: int) -> dict:
    return {"clearing_id": notice["clearing_id"], "month": notice["month"],
            "region": notice["region"], "amount": amount}


def clearing_notice(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """Confirm and pay by our own ledgers: the hub refuses a figure that differs from its."""
    body = msg.body
    month = body["month"]
    if body["clearing_state"].startswith("failed"):   # the hub refused our figures
        tables.fail_clearing(ctx.conn, body["clearing_id"], body["clearing_state"])
        return []
    payable, receivable = _own_position(ctx, month)
    tables.put_clearing(ctx.conn, body["clearing_id"], month=month, payable=body["payable"],
                        receivable=body["receivable"], own_payable=payable,
                        own_receivable=receivable)
    when = start_of(clearing_dates(month, ctx.config.calendar, ctx.config.clearing).payment)
    notice = {**body, "region": ctx.me}
    return [Outgoing("ClearingConfirmed", HUB, msg.correlation_id,
                     clearing_amount(notice, payable), sim_time=when),
            Outgoing("ClearingPaid", HUB, msg.correlation_id,
                     clearing_amount(notice, max(payable - receivable, 0)), sim_time=when)]


def funds_disbursed(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """Pay every hospital of the region what it advanced in the month, in-region claims
    included (those are the region's own, and never pass through the hub)."""
    body = msg.body
    month = body["month"]
    clearing_id = body["clearing_id"]
    roles = (Role.TREATING, Role.IN_REGION)
    due: dict[str, list] = {}
    for claim in tables.answered_treated(ctx.conn, month=month, unpaid=True):
        due.setdefault(claim["hospital"], []).append(claim)
    deducted: dict[str, list] = {}
    for r in tables.refusals_to_deduct(ctx.conn, month, roles):
        deducted.setdefault(r["hospital"], []).append(r)
    returned: dict[str, list] = {}
    for r in tables.refusals_to_return(ctx.conn, month, roles):
        returned.setdefault(r["hospital"], []).append(r)
    when = start_of(clearing_dates(month, ctx.config.calendar,
                                   ctx.config.clearing).hospital_payment)
    out = []
    total = 0
    for hospital in sorted(set(due) | set(deducted) | set(returned)):
        claims, minus, plus = (due.get(hospital, []), deducted.get(hospital, []),
                               returned.get(hospital, []))
        amount = (sum(_treated_row(c).fund_pay for c in claims)
                  - sum(r["amount"] for r in minus) + sum(r["amount"] for r in plus))
        total += amount
        tables.mark_paid(ctx.conn, [c["claim_id"] for c in claims], clearing_id)
        tables.mark_deducted(ctx.conn, [r["settlement_id"] for r in minus], clearing_id)
        tables.mark_returned(ctx.conn, [r["settlement_id"] for r in plus], clearing_id)
        out.append(Outgoing("HospitalPaid", hospitals_node(ctx.me), f"{clearing_id}-{hospital}", {
            "hospital": hospital, "month": month, "amount": amount,
            "settlement_ids": sorted(c["settlement_id"] for c in claims),
            "refused_settlement_ids": sorted(r["settlement_id"] for r in minus),
            "upheld_settlement_ids": sorted(r["settlement_id"] for r in plus)}, sim_time=when))
    tables.record_disbursement(ctx.conn, clearing_id, disbursed=body["amount"],
                               paid_to_hospitals=total)
    return out

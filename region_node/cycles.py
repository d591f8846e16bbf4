"""A region's business cycles: daily reconciliation and monthly clearing.

Reconciliation in both directions: with the hub (the hub asks, 3201 then 3202, and this
region answers by its own ledgers in both its roles) and with its hospitals (each hospital
asks, and the region's record is authoritative: a differing row is sent to the hospital
again). Clearing: the region confirms and pays by its own ledgers, and passes what it is
disbursed on to its hospitals, less refusals and plus upheld appeals.
"""

from __future__ import annotations

from clearsim import wire
from clearsim.domain.calendar import setlym, start_of
from clearsim.domain.clearing import clearing_dates
from clearsim.domain.reconciliation import (DATA_DIFFER, PLATFORM_MORE, Row, compare_details,
                                            totals)
from clearsim.messages import HUB, Message, Outgoing, hospitals_node
from clearsim.money import parse_fen
from region_node import tables
from region_node.handlers import RegionContext, _settlement_answer


# -- daily three-party reconciliation ------------------------------------------------

def _own_rows(ctx: RegionContext, day) -> dict[str, Row]:
    """This region's ledger of a day's cross-region settlements, in both its roles."""
    rows = {}
    for c in tables.settled_treated(ctx.conn):
        if c["insuring_region"] != ctx.me and c["setl_date"] == day:
            rows[c["setl_id"]] = Row(c["setl_id"], parse_fen(c["settlement"]["total"]),
                                     parse_fen(c["settlement"]["fund_pay"]))
    for c in tables.settled_insured(ctx.conn):
        if c["treating_region"] != ctx.me and c["setl_date"] == day:
            rows[c["setl_id"]] = Row(c["setl_id"], c["total"], c["fund_pay"])
    return rows


def _hospital_rows(ctx: RegionContext, hospital: str, day) -> dict[str, Row]:
    """This region's record of one of its hospitals' settlements of a day."""
    return {c["setl_id"]: Row(c["setl_id"], parse_fen(c["settlement"]["total"]),
                              parse_fen(c["settlement"]["fund_pay"]))
            for c in tables.settled_treated(ctx.conn)
            if c["hospital"] == hospital and c["setl_date"] == day}


def _answer_hospital_totals(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """A hospital reconciles its day with its platform (3201, institution -> platform)."""
    body = msg.body
    own = totals(_hospital_rows(ctx, body["setl_optins"], body["stmt_begndate"]).values())
    theirs = (body["fixmedins_setl_cnt"], wire.fen(body["medfee_sumamt"]),
              wire.fen(body["fund_pay_sumamt"]))
    return [Outgoing("TotalsReconciled", msg.sender, msg.correlation_id, {
        **{k: body[k] for k in ("setl_optins", "stmt_begndate", "stmt_enddate")},
        "medfee_sumamt": wire.money(own.total), "fund_pay_sumamt": wire.money(own.fund_pay),
        "acct_pay": wire.money(0), "fixmedins_setl_cnt": own.count,
        "stmt_rslt": "0" if (own.count, own.total, own.fund_pay) == theirs else "1"})]


def _answer_hospital_details(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """Row by row (3202); where the hospital lacks a settlement or holds other amounts, the
    platform's record is sent to it again (the platform's record is authoritative)."""
    body = msg.body
    theirs = {r["setl_id"]: Row(r["setl_id"], wire.fen(r["medfee_sumamt"]),
                                wire.fen(r["fund_pay_sumamt"])) for r in body["rows"]}
    results = compare_details(_hospital_rows(ctx, body["setl_optins"], body["stmt_begndate"]),
                              theirs)
    out = [Outgoing("DetailsReconciled", msg.sender, msg.correlation_id, {
        **{k: body[k] for k in ("setl_optins", "stmt_begndate", "stmt_enddate")},
        "rows": [{"setl_id": k, "stmt_rslt": v} for k, v in results.items()]})]
    for setl_id, result in results.items():
        if result in (PLATFORM_MORE, DATA_DIFFER):
            claim = tables.treated_by_setl_id(ctx.conn, setl_id)
            out.append(_settlement_answer(ctx, claim, claim["settlement"], infcode=0,
                                          error=None))
    return out


def reconcile_totals(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    if msg.sender != HUB:
        return _answer_hospital_totals(msg, ctx)
    body = msg.body
    own = totals(_own_rows(ctx, body["stmt_begndate"]).values())
    theirs = (body["fixmedins_setl_cnt"], wire.fen(body["medfee_sumamt"]),
              wire.fen(body["fund_pay_sumamt"]))
    balanced = (own.count, own.total, own.fund_pay) == theirs
    return [Outgoing("TotalsReconciled", HUB, msg.correlation_id, {
        "setl_optins": ctx.me, "stmt_begndate": body["stmt_begndate"],
        "stmt_enddate": body["stmt_enddate"], "medfee_sumamt": wire.money(own.total),
        "fund_pay_sumamt": wire.money(own.fund_pay), "acct_pay": wire.money(0),
        "fixmedins_setl_cnt": own.count, "stmt_rslt": "0" if balanced else "1"})]


def reconcile_details(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    if msg.sender != HUB:
        return _answer_hospital_details(msg, ctx)
    body = msg.body
    hub_rows = {r["setl_id"]: Row(r["setl_id"], wire.fen(r["medfee_sumamt"]),
                                  wire.fen(r["fund_pay_sumamt"])) for r in body["rows"]}
    results = compare_details(hub_rows, _own_rows(ctx, body["stmt_begndate"]))
    return [Outgoing("DetailsReconciled", HUB, msg.correlation_id, {
        "setl_optins": ctx.me, "stmt_begndate": body["stmt_begndate"],
        "stmt_enddate": body["stmt_enddate"],
        "rows": [{"setl_id": k, "stmt_rslt": v} for k, v in results.items()]})]


# -- monthly clearing ----------------------------------------------------------------

def _own_position(ctx: RegionContext, month: str) -> tuple[int, int]:
    """(payable, receivable) of a month by this region's own ledgers, cross-region only."""
    payable = sum(c["fund_pay"] for c in tables.settled_insured(ctx.conn)
                  if c["treating_region"] != ctx.me and setlym(c["setl_date"]) == month)
    receivable = sum(parse_fen(c["settlement"]["fund_pay"])
                     for c in tables.settled_treated(ctx.conn)
                     if c["insuring_region"] != ctx.me and setlym(c["setl_date"]) == month)
    for r in tables.all_refusals(ctx.conn):
        change = _refusal_change(r, month)
        if r["role"] == "insuring":
            payable += change
        elif r["role"] == "treating":
            receivable += change
    return payable, receivable


def _refusal_change(refusal, month: str) -> int:
    """What a refusal changes in a month's clearing: deducted in the month it was decided,
    returned in the month an appeal against it was upheld."""
    change = -refusal["amount"] if setlym(refusal["refused_on"]) == month else 0
    if refusal["upheld"] and setlym(refusal["decided_on"]) == month:
        change += refusal["amount"]
    return change


def clearing_notice(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """Confirm and pay by our own ledgers: the hub refuses a figure that differs from its."""
    body = msg.body
    month = body["setlym"]
    if body["clr_stas"].startswith("failed"):   # the hub refused our figures
        tables.update_clearing(ctx.conn, body["clr_appy_evt_id"], state=body["clr_stas"])
        return []
    payable, receivable = _own_position(ctx, month)
    tables.put_clearing(ctx.conn, body["clr_appy_evt_id"], setlym=month,
                        payable=wire.fen(body["payable"]),
                        receivable=wire.fen(body["receivable"]), own_payable=payable,
                        own_receivable=receivable)
    when = start_of(clearing_dates(month, ctx.config.calendar, ctx.config.clearing).payment)
    common = {"clr_appy_evt_id": body["clr_appy_evt_id"], "setlym": month, "admdvs": ctx.me}
    return [Outgoing("ClearingConfirmed", HUB, msg.correlation_id,
                     {**common, "amount": wire.money(payable)}, sim_time=when),
            Outgoing("ClearingPaid", HUB, msg.correlation_id,
                     {**common, "amount": wire.money(max(payable - receivable, 0))},
                     sim_time=when)]


def funds_disbursed(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """Pay every hospital of the region what it advanced in the month, in-region claims
    included (those are the region's own, and never pass through the hub)."""
    body = msg.body
    month = body["setlym"]
    clearing_id = body["clr_appy_evt_id"]
    due: dict[str, list] = {}
    for claim in tables.settled_treated(ctx.conn):
        if claim["paid_in"] is None and setlym(claim["setl_date"]) == month:
            due.setdefault(claim["hospital"], []).append(claim)
    deducted: dict[str, list] = {}
    returned: dict[str, list] = {}
    for r in tables.all_refusals(ctx.conn):
        if r["role"] == "insuring":
            continue
        if r["deducted_in"] is None and setlym(r["refused_on"]) == month:
            deducted.setdefault(r["hospital"], []).append(r)
        if r["upheld"] and r["returned_in"] is None and setlym(r["decided_on"]) == month:
            returned.setdefault(r["hospital"], []).append(r)
    when = start_of(clearing_dates(month, ctx.config.calendar,
                                   ctx.config.clearing).hospital_payment)
    out = []
    total = 0
    for hospital in sorted(set(due) | set(deducted) | set(returned)):
        claims, minus, plus = due.get(hospital, []), deducted.get(hospital, []), \
            returned.get(hospital, [])
        amount = (sum(parse_fen(c["settlement"]["fund_pay"]) for c in claims)
                  - sum(r["amount"] for r in minus) + sum(r["amount"] for r in plus))
        total += amount
        for claim in claims:
            tables.update_treated(ctx.conn, claim["claim_id"], paid_in=clearing_id)
        for r in minus:
            tables.put_refusal(ctx.conn, r["setl_id"], deducted_in=clearing_id)
        for r in plus:
            tables.put_refusal(ctx.conn, r["setl_id"], returned_in=clearing_id)
        out.append(Outgoing("HospitalPaid", hospitals_node(ctx.me), f"{clearing_id}-{hospital}", {
            "fixmedins_code": hospital, "setlym": month, "amount": wire.money(amount),
            "setl_ids": sorted(c["setl_id"] for c in claims),
            "refused_setl_ids": sorted(r["setl_id"] for r in minus),
            "upheld_setl_ids": sorted(r["setl_id"] for r in plus)}, sim_time=when))
    tables.update_clearing(ctx.conn, clearing_id, disbursed=wire.fen(body["amount"]),
                           paid_to_hospitals=total)
    return out


HANDLERS = {
    "ReconcileTotals": reconcile_totals,
    "ReconcileDetails": reconcile_details,
    "ClearingNotice": clearing_notice,
    "FundsDisbursed": funds_disbursed,
}

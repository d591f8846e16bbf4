"""The hospitals of one treating region: admit, upload, settle at discharge, track receivables.

One hospital node hosts every designated hospital of its region (they share the region's
topic), so topics and consumer groups grow with regions, never with hospitals. Every
handler is ``(message, context) -> messages to send``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from clearsim import wire
from clearsim.domain.reconciliation import Row, totals
from clearsim.errors import ClearsimError, ErrorCode
from clearsim.messages import Message, Outgoing, hospitals_node, region_node
from hospital_node import tables

TERMINAL = ("settled", "manual", "rejected", "failed")


@dataclass(frozen=True)
class HospitalsConfig:
    region: str
    hospitals: Mapping[str, int]   # hospital id -> level


@dataclass
class HospitalsContext:
    conn: object
    config: HospitalsConfig

    @property
    def node_id(self) -> str:
        return hospitals_node(self.config.region)

    @property
    def platform(self) -> str:
        return region_node(self.config.region)

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


def _claim(ctx: HospitalsContext, msg: Message, *states: str):
    claim = tables.get_claim(ctx.conn, msg.correlation_id)
    if claim is None:
        raise ClearsimError(ErrorCode.CLAIM_UNKNOWN,
                            f"no hospital of region {ctx.config.region} has claim "
                            f"{msg.correlation_id!r}", "correlation_id")
    if states and claim["state"] not in states:
        raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                            f"{msg.kind} for claim {claim['claim_id']} arrived in state "
                            f"{claim['state']!r}; expected {' or '.join(states)}", "state")
    return claim


def _end(ctx: HospitalsContext, claim_id: str, state: str, **values) -> None:
    tables.update_claim(ctx.conn, claim_id, state=state, answered_at=ctx.now(), **values)


def submit_claim(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    """A patient arrives: register the admission with the region's platform (2401)."""
    body = msg.body
    if body["fixmedins_code"] not in ctx.config.hospitals:
        raise ClearsimError(ErrorCode.HOSPITAL_UNKNOWN,
                            f"hospital {body['fixmedins_code']!r} is not hosted by "
                            f"{ctx.node_id}", "fixmedins_code")
    if tables.get_claim(ctx.conn, msg.correlation_id) is not None:
        raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                            f"claim {msg.correlation_id} was already submitted", "ipt_no")
    items = wire.fee_items_in(body["items"])
    tables.insert_claim(ctx.conn, claim_id=msg.correlation_id, hospital=body["fixmedins_code"],
                        psn_no=body["psn_no"], insutype=body["insutype"],
                        insuring_region=body["insuplc_admdvs"], begntime=body["begntime"],
                        items=wire.items_to_json(items),
                        total=sum(item.amount for item in items), state="admitting",
                        submitted_at=msg.header["sent_at"])
    return [Outgoing("AdmitPatient", ctx.platform, msg.correlation_id, {
        "ipt_no": body["ipt_no"], "mdtrt_id": None, "psn_no": body["psn_no"],
        "insutype": body["insutype"], "insuplc_admdvs": body["insuplc_admdvs"],
        "mdtrtarea_admvs": ctx.config.region, "fixmedins_code": body["fixmedins_code"],
        "med_type": "21", "begntime": body["begntime"]})]


def admission_answered(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    claim = _claim(ctx, msg, "admitting")
    body = msg.body
    items = wire.items_from_json(claim["items"])
    if body["infcode"] != 0:
        _end(ctx, claim["claim_id"], "rejected", error=body["error"])
        return []
    if not body["direct"]:
        # No direct settlement: the patient pays everything now and claims at home.
        _end(ctx, claim["claim_id"], "manual", mdtrt_id=body["mdtrt_id"], fund_pay=0,
             personal_pay=claim["total"], error=body["error"])
        return [Outgoing("ReimburseManually", region_node(claim["insuring_region"]),
                         claim["claim_id"], {
                             "ipt_no": claim["claim_id"], "psn_no": claim["psn_no"],
                             "insutype": claim["insutype"],
                             "mdtrtarea_admvs": ctx.config.region,
                             "fixmedins_code": claim["hospital"],
                             "setl_time": msg.sim_time,
                             "items": wire.fee_items_out(items)})]
    tables.update_claim(ctx.conn, claim["claim_id"], state="charging",
                        mdtrt_id=body["mdtrt_id"])
    return [Outgoing("UploadCharges", ctx.platform, claim["claim_id"], {
        "ipt_no": claim["claim_id"], "mdtrt_id": body["mdtrt_id"],
        "items": wire.fee_items_out(items)})]


def charges_answered(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    claim = _claim(ctx, msg, "charging")
    if msg.body["infcode"] != 0:
        _end(ctx, claim["claim_id"], "rejected", error=msg.body["error"])
        return []
    tables.update_claim(ctx.conn, claim["claim_id"], state="settling")
    return [Outgoing("SettleClaim", ctx.platform, claim["claim_id"], {
        "ipt_no": claim["claim_id"], "mdtrt_id": claim["mdtrt_id"],
        "insutype": claim["insutype"], "medfee_sumamt": wire.money(claim["total"]),
        "endtime": msg.sim_time})]


def settlement_answered(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    claim = _claim(ctx, msg, "settling", "settled")
    body = msg.body
    if claim["state"] == "settled":
        # The platform sent its record again after reconciliation: it is authoritative.
        if body["infcode"] != 0 or body["setl_id"] != claim["setl_id"]:
            raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                                f"claim {claim['claim_id']} is settled as {claim['setl_id']}; "
                                f"a correction must carry that settlement", "setl_id")
        tables.update_claim(ctx.conn, claim["claim_id"],
                            fund_pay=wire.fen(body["fund_pay_sumamt"]),
                            personal_pay=wire.fen(body["psn_cash_pay"]))
        return []
    if body["infcode"] != 0:
        _end(ctx, claim["claim_id"], "rejected", error=body["error"])
        return []
    _end(ctx, claim["claim_id"], "settled", setl_id=body["setl_id"],
         fund_pay=wire.fen(body["fund_pay_sumamt"]),
         personal_pay=wire.fen(body["psn_cash_pay"]))
    return []


def claim_rejected(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    claim = _claim(ctx, msg)
    if claim["state"] not in TERMINAL:
        _end(ctx, claim["claim_id"], "failed", error=msg.body["error"])
    return []


def message_rejected(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    """The platform refused what we sent: the claim ends here, with its stated cause."""
    claim = tables.get_claim(ctx.conn, msg.correlation_id)
    if claim is not None and claim["state"] not in TERMINAL:
        _end(ctx, claim["claim_id"], "rejected", error=msg.body["error"])
    return []


def _settlements(ctx: HospitalsContext, setl_ids, field: str, done: str) -> dict:
    """Claims by settlement id, each known and not yet ``done`` (paid, deducted, returned)."""
    claims = {c["setl_id"]: c for c in tables.by_setl_ids(ctx.conn, list(setl_ids))}
    missing = sorted(set(setl_ids) - set(claims))
    if missing:
        raise ClearsimError(ErrorCode.CLAIM_UNKNOWN,
                            f"payment for unknown settlements {', '.join(missing[:5])}", field)
    twice = sorted(s for s, c in claims.items() if c[done] is not None)
    if twice:
        raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                            f"settlements already counted in a payment: {', '.join(twice[:5])}",
                            field)
    return claims


def hospital_paid(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    """The region pays back what the hospital advanced, each settlement once and in full,
    less the refusals decided in the month, plus the appeals upheld in it."""
    body = msg.body
    claims = _settlements(ctx, body["setl_ids"], "setl_ids", "paid_on")
    refused = _settlements(ctx, body["refused_setl_ids"], "refused_setl_ids", "deducted_on")
    upheld = _settlements(ctx, body["upheld_setl_ids"], "upheld_setl_ids", "returned_on")
    expected = (sum(c["fund_pay"] for c in claims.values())
                - sum(c["refused_amount"] or 0 for c in refused.values())
                + sum(c["refused_amount"] or 0 for c in upheld.values()
                      if c["appeal_upheld"]))
    if wire.fen(body["amount"]) != expected:
        raise ClearsimError(ErrorCode.SETTLEMENT_MISMATCH,
                            f"payment of {body['amount']} where the hospital expects "
                            f"{wire.money(expected)}", "amount")
    day = msg.sim_time.date()
    for claim in claims.values():
        tables.update_claim(ctx.conn, claim["claim_id"], paid_on=day, paid_at=ctx.now(),
                            paid_amount=claim["fund_pay"])
    for claim in refused.values():
        tables.update_claim(ctx.conn, claim["claim_id"], deducted_on=day)
    for claim in upheld.values():
        tables.update_claim(ctx.conn, claim["claim_id"], returned_on=day)
    return []


def claim_refused(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    """The insuring region refused part of a settlement: record it, and appeal."""
    claim = _claim(ctx, msg, "settled")
    body = msg.body
    tables.update_claim(ctx.conn, claim["claim_id"], refused_amount=wire.fen(body["refused_amount"]),
                        refused_on=msg.sim_time.date())
    return [Outgoing("AppealFiled", ctx.platform, claim["claim_id"], {
        "setl_id": body["setl_id"], "ipt_no": claim["claim_id"],
        "amount": body["refused_amount"],
        "reason": f"the hospital contests the {body['rule']} refusal"})]


def appeal_decided(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    claim = _claim(ctx, msg, "settled")
    tables.update_claim(ctx.conn, claim["claim_id"], appeal_upheld=msg.body["upheld"],
                        appeal_decided_on=msg.sim_time.date())
    return []


# -- daily reconciliation with the platform (3201 / 3202, institution -> platform) -----

def _rows(claims) -> dict[str, Row]:
    return {c["setl_id"]: Row(c["setl_id"], c["total"], c["fund_pay"]) for c in claims}


def start_reconciliation(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    """Every hospital with settlements on the day sends its totals to its platform."""
    day = msg.body["stmt_date"]
    by_hospital: dict[str, list] = {}
    for claim in tables.settled_on(ctx.conn, day):
        by_hospital.setdefault(claim["hospital"], []).append(claim)
    out = []
    for hospital, claims in sorted(by_hospital.items()):
        t = totals(_rows(claims).values())
        tables.put_reconciliation(ctx.conn, day, hospital, state="asked")
        out.append(Outgoing("ReconcileTotals", ctx.platform, f"HRC{day:%Y%m%d}-{hospital}", {
            "setl_optins": hospital, "stmt_begndate": day, "stmt_enddate": day,
            "medfee_sumamt": wire.money(t.total), "fund_pay_sumamt": wire.money(t.fund_pay),
            "acct_pay": wire.money(0), "fixmedins_setl_cnt": t.count}))
    return out


def totals_reconciled(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    body = msg.body
    hospital, day = body["setl_optins"], body["stmt_begndate"]
    if body["stmt_rslt"] == "0":
        tables.put_reconciliation(ctx.conn, day, hospital, state="balanced")
        return []
    tables.put_reconciliation(ctx.conn, day, hospital, state="detailing")
    claims = [c for c in tables.settled_on(ctx.conn, day) if c["hospital"] == hospital]
    return [Outgoing("ReconcileDetails", ctx.platform, msg.correlation_id, {
        "setl_optins": hospital, "stmt_begndate": day, "stmt_enddate": day,
        "rows": [{"setl_id": c["setl_id"], "mdtrt_id": c["mdtrt_id"], "psn_no": c["psn_no"],
                  "medfee_sumamt": wire.money(c["total"]),
                  "fund_pay_sumamt": wire.money(c["fund_pay"])} for c in claims]})]


def details_reconciled(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    body = msg.body
    results = {r["setl_id"]: r["stmt_rslt"] for r in body["rows"]}
    tables.put_reconciliation(ctx.conn, body["stmt_begndate"], body["setl_optins"],
                              state="differences" if any(results.values()) else "balanced",
                              results=results)
    return []


HANDLERS = {
    "SubmitClaim": submit_claim,
    "AdmissionAnswered": admission_answered,
    "ChargesAnswered": charges_answered,
    "SettlementAnswered": settlement_answered,
    "ClaimRejected": claim_rejected,
    "MessageRejected": message_rejected,
    "HospitalPaid": hospital_paid,
    "StartReconciliation": start_reconciliation,
    "TotalsReconciled": totals_reconciled,
    "DetailsReconciled": details_reconciled,
    "ClaimRefused": claim_refused,
    "AppealDecided": appeal_decided,
}

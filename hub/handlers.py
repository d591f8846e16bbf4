"""The national hub's handlers: route every cross-region message and keep the record.

Each handler is a plain function ``(message, context) -> messages to send``. The hub is the
node centre (it routes), the transaction centre (``hub_claims`` is the authoritative log)
and the registry of filings and of every region's current policy version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from clearsim import wire
from clearsim.domain.calendar import Calendar, month_end, setlym, start_of
from clearsim.domain.clearing import ClearingTerms, clearing_dates, positions
from clearsim.domain.reconciliation import (BALANCED, ReconciliationTerms, Row, case_for,
                                            totals)
from clearsim.errors import ClearsimError, ErrorCode
from clearsim.messages import HUB, Message, Outgoing, admdvs_of, region_node
from hub import tables


@dataclass(frozen=True)
class HubConfig:
    regions: tuple[str, ...]
    calendar: Calendar = field(default_factory=Calendar)
    clearing: ClearingTerms = field(default_factory=ClearingTerms)
    reconciliation: ReconciliationTerms = field(default_factory=ReconciliationTerms)


@dataclass
class HubContext:
    conn: object
    config: HubConfig
    node_id: str = HUB

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


def _known_region(ctx: HubContext, admdvs: str, field: str) -> str:
    if admdvs not in ctx.config.regions:
        raise ClearsimError(ErrorCode.REGION_UNKNOWN,
                            f"region {admdvs!r} is not connected to the hub", field)
    return admdvs


def _from_region(msg: Message, admdvs: str, field: str) -> None:
    """A region may speak only for itself."""
    if admdvs_of(msg.sender) != admdvs or not msg.sender.startswith("region-"):
        raise ClearsimError(ErrorCode.INVALID_INPUT,
                            f"{msg.sender} sent {msg.kind} for region {admdvs}; "
                            "a region may only send its own", field)


def _claim(ctx: HubContext, msg: Message):
    claim = tables.get_claim(ctx.conn, msg.correlation_id)
    if claim is None:
        raise ClearsimError(ErrorCode.CLAIM_UNKNOWN,
                            f"the hub has no claim {msg.correlation_id!r}", "correlation_id")
    return claim


def _expect_state(claim, kind: str, *states: str) -> None:
    if claim["state"] not in states:
        raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                            f"{kind} for claim {claim['claim_id']} arrived in state "
                            f"{claim['state']!r}; expected {' or '.join(states)}", "state")


# -- policy registry ---------------------------------------------------------------

def publish_policy(msg: Message, ctx: HubContext) -> list[Outgoing]:
    region = _known_region(ctx, msg.body["admdvs"], "admdvs")
    _from_region(msg, region, "admdvs")
    version = msg.body["policy_version"]
    current = tables.policy_version(ctx.conn, region)
    if current is not None and version < current:
        raise ClearsimError(ErrorCode.POLICY_STALE,
                            f"region {region} published policy version {version}, older than "
                            f"the registered version {current}", "policy_version")
    tables.put_policy(ctx.conn, region, version,
                      wire.policy_to_json(wire.policy_in(msg.body)), ctx.now())
    return [Outgoing("PolicyPublished", region_node(r), region, msg.body)
            for r in ctx.config.regions]


# -- filing registry ---------------------------------------------------------------

def register_filing(msg: Message, ctx: HubContext) -> list[Outgoing]:
    body = msg.body
    insuring = _known_region(ctx, body["insuplc_admdvs"], "insuplc_admdvs")
    treating = _known_region(ctx, body["mdtrtarea_admdvs"], "mdtrtarea_admdvs")
    _from_region(msg, insuring, "insuplc_admdvs")
    tables.put_filing(ctx.conn, {k: body[k] for k in (
        "filing_id", "psn_no", "insutype", "insuplc_admdvs", "mdtrtarea_admdvs",
        "refl_type", "begndate", "enddate")})
    return [Outgoing("FilingRegistered", region_node(treating), msg.correlation_id, body),
            Outgoing("FilingRegistered", region_node(insuring), msg.correlation_id, body)]


# -- one claim: admission, settlement, confirmation --------------------------------

def admit_patient(msg: Message, ctx: HubContext) -> list[Outgoing]:
    body = msg.body
    treating = _known_region(ctx, body["mdtrtarea_admvs"], "mdtrtarea_admvs")
    insuring = _known_region(ctx, body["insuplc_admdvs"], "insuplc_admdvs")
    _from_region(msg, treating, "mdtrtarea_admvs")
    if tables.get_claim(ctx.conn, msg.correlation_id) is not None:
        raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                            f"claim {msg.correlation_id} was already admitted", "ipt_no")
    tables.insert_claim(ctx.conn, claim_id=msg.correlation_id, mdtrt_id=body["mdtrt_id"],
                        psn_no=body["psn_no"], insutype=body["insutype"],
                        insuring_region=insuring, treating_region=treating,
                        hospital=body["fixmedins_code"], state="verifying",
                        claim_date=body["begntime"].date(), updated_at=ctx.now())
    return [Outgoing("AdmitPatient", region_node(insuring), msg.correlation_id, body)]


def admission_verified(msg: Message, ctx: HubContext) -> list[Outgoing]:
    claim = _claim(ctx, msg)
    _from_region(msg, claim["insuring_region"], "sender")
    _expect_state(claim, msg.kind, "verifying")
    accepted = msg.body["accepted"]
    error = wire.error_in(msg.body["error"])
    tables.update_claim(ctx.conn, claim["claim_id"], state="admitted" if accepted else "refused",
                        policy_version=msg.body["policy_version"],
                        error_code=error.code.value if error else None, updated_at=ctx.now())
    return [Outgoing(msg.kind, region_node(claim["treating_region"]), msg.correlation_id,
                     msg.body)]


def claim_settled(msg: Message, ctx: HubContext) -> list[Outgoing]:
    claim = _claim(ctx, msg)
    _from_region(msg, claim["treating_region"], "sender")
    _expect_state(claim, msg.kind, "admitted")
    body = msg.body
    tables.update_claim(ctx.conn, claim["claim_id"], state="settled", setl_id=body["setl_id"],
                        total=wire.fen(body["medfee_sumamt"]),
                        fund_pay=wire.fen(body["fund_pay_sumamt"]),
                        personal_pay=wire.fen(body["psn_cash_pay"]),
                        policy_version=body["policy_version"],
                        setl_date=body["setl_time"].date(), record=wire.jsonable(body),
                        settled_at=ctx.now(), updated_at=ctx.now())
    return [Outgoing(msg.kind, region_node(claim["insuring_region"]), msg.correlation_id, body)]


def settlement_confirmed(msg: Message, ctx: HubContext) -> list[Outgoing]:
    claim = _claim(ctx, msg)
    _from_region(msg, claim["insuring_region"], "sender")
    case = tables.open_case_for(ctx.conn, claim["claim_id"])
    if case is not None and claim["state"] in CLEARABLE:
        return _repaired(ctx, msg, claim, case)
    _expect_state(claim, msg.kind, "settled")
    cause = wire.error_in(msg.body["cause"])
    tables.update_claim(ctx.conn, claim["claim_id"],
                        state="confirmed" if msg.body["agreed"] else "mismatch",
                        insuring_fund_pay=wire.fen(msg.body["fund_pay_sumamt"]),
                        error_code=cause.code.value if cause else None, updated_at=ctx.now())
    return [Outgoing(msg.kind, region_node(claim["treating_region"]), msg.correlation_id,
                     msg.body)]


def claim_rejected(msg: Message, ctx: HubContext) -> list[Outgoing]:
    claim = _claim(ctx, msg)
    _from_region(msg, claim["treating_region"], "sender")
    _expect_state(claim, msg.kind, "admitted")
    tables.update_claim(ctx.conn, claim["claim_id"], state="rejected",
                        error_code=msg.body["error"]["code"], updated_at=ctx.now())
    return [Outgoing(msg.kind, region_node(claim["insuring_region"]), msg.correlation_id,
                     msg.body)]


def message_rejected(msg: Message, ctx: HubContext) -> list[Outgoing]:
    """A region refused what the hub routed: the claim stops there, with the cause."""
    claim = tables.get_claim(ctx.conn, msg.correlation_id)
    if claim is not None:
        tables.update_claim(ctx.conn, claim["claim_id"], state="failed",
                            error_code=msg.body["error"]["code"], updated_at=ctx.now())
    return []


# -- daily three-party reconciliation ------------------------------------------------

def _recon_id(day, region: str) -> str:
    return f"RC{day:%Y%m%d}-{region}"


def _hub_rows(ctx: HubContext, day, region: str) -> dict[str, Row]:
    return {c["setl_id"]: Row(c["setl_id"], c["total"], c["fund_pay"])
            for c in tables.day_rows(ctx.conn, day, region)}


def start_reconciliation(msg: Message, ctx: HubContext) -> list[Outgoing]:
    """Ask every region to compare its ledger of a day's settlements with the hub's; on a
    later attempt ask again those that have not answered, and once the attempts are spent
    turn each one's silence into a case."""
    day, attempt = msg.body["stmt_date"], msg.body["attempt"]
    limit = ctx.config.reconciliation.max_attempts
    out = []
    for region in ctx.config.regions:
        held = tables.get_reconciliation(ctx.conn, day, region)
        if attempt > 1 and (held is None or held["state"] != "asked"):
            continue
        if attempt > limit:
            tables.put_reconciliation(ctx.conn, day, region, "escalated")
            # one case per settlement left unconfirmed (or one for the day if it had none)
            affected = tables.day_rows(ctx.conn, day, region) or [None]
            for claim in affected:
                setl_id = claim["setl_id"] if claim else ""
                tables.insert_case(ctx.conn, case_id=f"{_recon_id(day, region)}-NO_ANSWER"
                                                     f"{'-' + setl_id if setl_id else ''}",
                                   stmt_date=day, admdvs=region, setl_id=setl_id,
                                   claim_id=claim["claim_id"] if claim else None,
                                   cause="NO_ANSWER", owner=region_node(region),
                                   repair="escalate", state="escalated",
                                   resolution=f"no answer to {limit} requests: left to people")
            continue
        t = totals(_hub_rows(ctx, day, region).values())
        tables.put_reconciliation(ctx.conn, day, region, "asked", attempts=attempt)
        out.append(Outgoing("ReconcileTotals", region_node(region), _recon_id(day, region), {
            "setl_optins": region, "stmt_begndate": day, "stmt_enddate": day,
            "medfee_sumamt": wire.money(t.total), "fund_pay_sumamt": wire.money(t.fund_pay),
            "acct_pay": wire.money(0), "fixmedins_setl_cnt": t.count}))
    return out


def _agree(ctx: HubContext, claim, region: str, when) -> None:
    """One more party agrees with the hub; with both regions, all three agree."""
    sides = {"recon_treating": claim["recon_treating"] or claim["treating_region"] == region,
             "recon_insuring": claim["recon_insuring"] or claim["insuring_region"] == region}
    done = all(sides.values()) and claim["reconciled_on"] is None
    tables.update_claim(ctx.conn, claim["claim_id"], **sides,
                        **({"reconciled_on": when.date(), "reconciled_at": ctx.now()}
                           if done else {}))


def totals_reconciled(msg: Message, ctx: HubContext) -> list[Outgoing]:
    body = msg.body
    region, day = body["setl_optins"], body["stmt_begndate"]
    _from_region(msg, region, "setl_optins")
    held = tables.get_reconciliation(ctx.conn, day, region)
    if held is None or held["state"] != "asked":   # a late answer to a repeated request
        return []
    rows = tables.day_rows(ctx.conn, day, region)
    if body["stmt_rslt"] == "0":
        for claim in rows:
            _agree(ctx, claim, region, msg.sim_time)
        tables.put_reconciliation(ctx.conn, day, region, "balanced")
        return []
    tables.put_reconciliation(ctx.conn, day, region, "detailing")
    return [Outgoing("ReconcileDetails", region_node(region), msg.correlation_id, {
        "setl_optins": region, "stmt_begndate": day, "stmt_enddate": day,
        "rows": [{"setl_id": c["setl_id"], "mdtrt_id": c["mdtrt_id"], "psn_no": c["psn_no"],
                  "medfee_sumamt": wire.money(c["total"]),
                  "fund_pay_sumamt": wire.money(c["fund_pay"])} for c in rows]})]


def details_reconciled(msg: Message, ctx: HubContext) -> list[Outgoing]:
    """Every row not balanced becomes a case; an insuring region's ledger is repaired by
    resending the hub's record, anything else is escalated to people."""
    body = msg.body
    region, day = body["setl_optins"], body["stmt_begndate"]
    _from_region(msg, region, "setl_optins")
    held = tables.get_reconciliation(ctx.conn, day, region)
    if held is None or held["state"] != "detailing":
        return []
    out = []
    escalations = 0
    for row in body["rows"]:
        claim = tables.claim_by_setl_id(ctx.conn, row["setl_id"])
        if row["stmt_rslt"] == BALANCED:
            _agree(ctx, claim, region, msg.sim_time)
            continue
        case = case_for(row["stmt_rslt"], msg.sender,
                        claim is not None and claim["insuring_region"] == region)
        case_id = f"{msg.correlation_id}-{row['setl_id']}"
        escalated = case.repair == "escalate"
        escalations += escalated
        tables.insert_case(ctx.conn, case_id=case_id, stmt_date=day, admdvs=region,
                           setl_id=row["setl_id"],
                           claim_id=None if claim is None else claim["claim_id"],
                           cause=case.cause, owner=case.owner, repair=case.repair,
                           state="escalated" if escalated else "open",
                           resolution="left to people: the hub cannot repair this ledger"
                           if escalated else None)
        if not escalated:
            record = wire.from_jsonable(claim["record"])
            out.append(Outgoing("ClaimSettled", region_node(region), claim["claim_id"],
                                {**record, "repair_of_case": case_id}))
    state = ("repairing" if tables.open_cases(ctx.conn, day, region)
             else "escalated" if escalations else "balanced")
    tables.put_reconciliation(ctx.conn, day, region, state)
    return out


def _repaired(ctx: HubContext, msg: Message, claim, case) -> list[Outgoing]:
    agreed = msg.body["agreed"]
    tables.update_case(ctx.conn, case["case_id"], state="repaired",
                       resolution=f"{case['repair']}: the hub resent its record and "
                                  f"{msg.sender} recorded it (agreed: {agreed})")
    _agree(ctx, claim, claim["insuring_region"], msg.sim_time)
    if not tables.open_cases(ctx.conn, case["stmt_date"], case["admdvs"]):
        tables.put_reconciliation(ctx.conn, case["stmt_date"], case["admdvs"], "repaired")
    return []


# -- audit refusals and appeals ------------------------------------------------------

def claim_refused(msg: Message, ctx: HubContext) -> list[Outgoing]:
    claim = _claim(ctx, msg)
    _from_region(msg, claim["insuring_region"], "sender")
    body = msg.body
    tables.put_refusal(ctx.conn, body["setl_id"], claim_id=claim["claim_id"],
                       insuring_region=claim["insuring_region"],
                       treating_region=claim["treating_region"], rule=body["rule"],
                       amount=wire.fen(body["refused_amount"]), refused_on=msg.sim_time.date())
    return [Outgoing(msg.kind, region_node(claim["treating_region"]), claim["claim_id"], body)]


def _refusal(ctx: HubContext, msg: Message):
    refusal = tables.get_refusal(ctx.conn, msg.body["setl_id"])
    if refusal is None:
        raise ClearsimError(ErrorCode.CLAIM_UNKNOWN,
                            f"no refusal of settlement {msg.body['setl_id']} is registered",
                            "setl_id")
    return refusal


def appeal_filed(msg: Message, ctx: HubContext) -> list[Outgoing]:
    refusal = _refusal(ctx, msg)
    _from_region(msg, refusal["treating_region"], "sender")
    return [Outgoing(msg.kind, region_node(refusal["insuring_region"]), msg.correlation_id,
                     msg.body)]


def appeal_decided(msg: Message, ctx: HubContext) -> list[Outgoing]:
    refusal = _refusal(ctx, msg)
    _from_region(msg, refusal["insuring_region"], "sender")
    tables.put_refusal(ctx.conn, refusal["setl_id"], upheld=msg.body["upheld"],
                       decided_on=msg.sim_time.date())
    return [Outgoing(msg.kind, region_node(refusal["treating_region"]), msg.correlation_id,
                     msg.body)]


# -- monthly clearing ----------------------------------------------------------------

IN_FLIGHT = ("verifying", "admitted", "settled")
CLEARABLE = ("confirmed", "mismatch")


def open_clearing(msg: Message, ctx: HubContext) -> list[Outgoing]:
    """Net every region's position for a month and send each its clearing notice. A window
    does not open while a claim that may belong to it is still in flight."""
    month = msg.body["setlym"]
    if tables.get_clearing(ctx.conn, month) is not None:
        raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                            f"the clearing window {month} is already open", "setlym")
    last = month_end(date(int(month[:4]), int(month[4:]), 1))
    pending = tables.uncleared_claims(ctx.conn)
    in_flight = sorted(c["claim_id"] for c in pending
                       if c["state"] in IN_FLIGHT and c["claim_date"] <= last)
    if in_flight:
        raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                            f"the clearing window {month} cannot open: {len(in_flight)} claims "
                            f"are in flight ({', '.join(in_flight[:5])})", "setlym")
    window = [c for c in pending if c["state"] in CLEARABLE and setlym(c["setl_date"]) == month]
    flows = [(c["insuring_region"], c["treating_region"], c["fund_pay"]) for c in window]
    clearing_id = f"CLR{month}"
    for r in tables.all_refusals(ctx.conn):   # refusals deducted, upheld appeals returned
        if r["refused_clearing"] is None and setlym(r["refused_on"]) == month:
            flows.append((r["insuring_region"], r["treating_region"], -r["amount"]))
            tables.put_refusal(ctx.conn, r["setl_id"], refused_clearing=clearing_id)
        if r["upheld"] and r["upheld_clearing"] is None and setlym(r["decided_on"]) == month:
            flows.append((r["insuring_region"], r["treating_region"], r["amount"]))
            tables.put_refusal(ctx.conn, r["setl_id"], upheld_clearing=clearing_id)
    table = positions(flows, ctx.config.regions)
    tables.insert_window(ctx.conn, clearing_id, month, [c["claim_id"] for c in window], table)
    when = start_of(clearing_dates(month, ctx.config.calendar, ctx.config.clearing).notice)
    return [Outgoing("ClearingNotice", region_node(p.region), clearing_id, {
        "clr_appy_evt_id": clearing_id, "setlym": month, "admdvs": p.region,
        "payable": wire.money(p.payable), "receivable": wire.money(p.receivable),
        "net": wire.money(p.net), "clr_stas": "notified"}, sim_time=when)
        for p in table.values()]


def _position(ctx: HubContext, msg: Message):
    region = msg.body["admdvs"]
    _from_region(msg, region, "admdvs")
    found = tables.get_positions(ctx.conn, msg.body["clr_appy_evt_id"]).get(region)
    if found is None:
        raise ClearsimError(ErrorCode.CLAIM_UNKNOWN,
                            f"no clearing position {msg.body['clr_appy_evt_id']} for region "
                            f"{region}", "clr_appy_evt_id")
    return found


def _failed(ctx: HubContext, msg: Message, position, why: str) -> list[Outgoing]:
    """The window fails: the region's figure is not the hub's. Reconciliation has to find
    the difference before money moves; the region hears why."""
    tables.set_window_state(ctx.conn, position["clearing_id"], "failed")
    return [Outgoing("ClearingNotice", msg.sender, msg.correlation_id, {
        "clr_appy_evt_id": position["clearing_id"], "setlym": msg.body["setlym"],
        "admdvs": position["admdvs"], "payable": wire.money(position["payable"]),
        "receivable": wire.money(position["receivable"]),
        "net": wire.money(position["payable"] - position["receivable"]),
        "clr_stas": f"failed: {why}"[:200]})]


def clearing_confirmed(msg: Message, ctx: HubContext) -> list[Outgoing]:
    position = _position(ctx, msg)
    if wire.fen(msg.body["amount"]) != position["payable"]:
        return _failed(ctx, msg, position,
                       f"region {position['admdvs']} confirmed {msg.body['amount']} but owes "
                       f"{wire.money(position['payable'])} as insuring region")
    tables.update_position(ctx.conn, position["clearing_id"], position["admdvs"],
                           confirmed=True)
    if all(p["confirmed"] for p in tables.get_positions(ctx.conn,
                                                         position["clearing_id"]).values()):
        tables.set_window_state(ctx.conn, position["clearing_id"], "confirmed")
    return []


def clearing_paid(msg: Message, ctx: HubContext) -> list[Outgoing]:
    """Record a region's payment; once every region has paid, disburse to net receivers."""
    position = _position(ctx, msg)
    due = max(position["payable"] - position["receivable"], 0)
    if wire.fen(msg.body["amount"]) != due:
        return _failed(ctx, msg, position, f"region {position['admdvs']} paid "
                                           f"{msg.body['amount']}; its net position is "
                                           f"{wire.money(due)}")
    clearing_id = position["clearing_id"]
    tables.update_position(ctx.conn, clearing_id, position["admdvs"], paid=due)
    table = tables.get_positions(ctx.conn, clearing_id)
    if tables.get_clearing(ctx.conn, msg.body["setlym"])["state"] == "failed" or not all(
            p["confirmed"] and p["paid"] is not None for p in table.values()):
        return []
    tables.set_window_state(ctx.conn, clearing_id, "paid")
    month = msg.body["setlym"]
    when = start_of(clearing_dates(month, ctx.config.calendar, ctx.config.clearing).disbursement)
    out = []
    for region, p in table.items():
        amount = max(p["receivable"] - p["payable"], 0)
        tables.update_position(ctx.conn, clearing_id, region, disbursed=amount)
        out.append(Outgoing("FundsDisbursed", region_node(region), clearing_id, {
            "clr_appy_evt_id": clearing_id, "setlym": month, "admdvs": region,
            "amount": wire.money(amount)}, sim_time=when))
    tables.set_window_state(ctx.conn, clearing_id, "disbursed")
    return out


HANDLERS = {
    "PublishPolicy": publish_policy,
    "RegisterFiling": register_filing,
    "AdmitPatient": admit_patient,
    "AdmissionVerified": admission_verified,
    "ClaimSettled": claim_settled,
    "SettlementConfirmed": settlement_confirmed,
    "ClaimRejected": claim_rejected,
    "MessageRejected": message_rejected,
    "OpenClearing": open_clearing,
    "StartReconciliation": start_reconciliation,
    "ClaimRefused": claim_refused,
    "AppealFiled": appeal_filed,
    "AppealDecided": appeal_decided,
    "TotalsReconciled": totals_reconciled,
    "DetailsReconciled": details_reconciled,
    "ClearingConfirmed": clearing_confirmed,
    "ClearingPaid": clearing_paid,
}

"""The national hub's handlers: route every cross-region message and keep the record.

Each handler is a plain function ``(message, context) -> messages to send``; bodies are in
clearsim's own words (English names, money in fen: ``clearsim.wire``). The hub is the node
centre (it routes), the transaction centre (``hub_claims`` is the authoritative log) and
the registry of filings and of every region's current policy version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from clearsim import bodies, wire
from clearsim.domain.calendar import Calendar, month_end, start_of
from clearsim.domain.clearing import ClearingTerms, clearing_dates, positions
from clearsim.domain.reconciliation import (BALANCED, ReconciliationTerms, Row, case_for,
                                            totals)
from clearsim.errors import ClearsimError, ErrorCode, interface_refusal
from clearsim.faults import NO_FAULTS, Faults
from clearsim.handling import Context, require, wall_clock
from clearsim.messages import HUB, POLICIES, Message, Outgoing, region_node
from clearsim.money import format_fen
from clearsim.senders import speaks_for
from hub import tables
from hub.tables import (CLEARABLE, IN_FLIGHT, CaseState, ClaimState, ReconciliationState,
                        WindowState)


@dataclass(frozen=True)
class HubConfig:
    regions: tuple[str, ...]
    calendar: Calendar = field(default_factory=Calendar)
    clearing: ClearingTerms = field(default_factory=ClearingTerms)
    reconciliation: ReconciliationTerms = field(default_factory=ReconciliationTerms)


class HubContext(Context[HubConfig]):
    """The hub's handler context."""

    @classmethod
    def of(cls, conn, config: HubConfig,
           clock: Callable[[], datetime] = wall_clock,
           faults: Faults = NO_FAULTS) -> "HubContext":
        return cls(conn, config, HUB, clock, faults)


def _known_region(ctx: HubContext, region: str, field: str) -> str:
    if region not in ctx.config.regions:
        raise ClearsimError(ErrorCode.REGION_UNKNOWN,
                            f"region {region!r} is not connected to the hub", field)
    return region


def _from_region(msg: Message, region: str, field: str) -> None:
    """A region may speak only for itself (SENDER_NOT_AUTHORIZED)."""
    speaks_for(msg, [region_node(region)], f"region {region}", field)


def _claim(ctx: HubContext, msg: Message):
    return require(tables.get_claim(ctx.conn, msg.correlation_id),
                   what=f"claim {msg.correlation_id}", holder="the hub", kind=msg.kind)


def _expect(msg: Message, claim, *states: ClaimState):
    return require(claim, *states, what=f"claim {claim['claim_id']}", holder="the hub",
                   kind=msg.kind)


def _error_code(error: dict | None) -> str | None:
    rejection = wire.error_in(error)
    return rejection.code.value if rejection else None


# -- the ClaimSettled record the hub keeps and resends -----------------------------------

def _shares(body: dict, convert) -> dict:
    """The B self-pay shares of a body's charge lines (v4), converted."""
    if "items" not in body:
        return {}
    return {"items": [{**line, "b_selfpay_share": None if line["b_selfpay_share"] is None
                       else convert(line["b_selfpay_share"])} for line in body["items"]]}


def record_json(body: dict) -> dict:
    """A ClaimSettled body for a JSON column: money stays fen, the time and ratios strings."""
    return {**body, "settled_at": body["settled_at"].isoformat(), "ratio": str(body["ratio"]),
            **_shares(body, str)}


def record_body(record: dict) -> dict:
    """The ClaimSettled body of a stored record."""
    return {**record, "settled_at": datetime.fromisoformat(record["settled_at"]),
            "ratio": Decimal(record["ratio"]), **_shares(record, Decimal)}


# -- policy registry ---------------------------------------------------------------

def publish_policy(msg: Message, ctx: HubContext) -> list[Outgoing]:
    region = _known_region(ctx, msg.body["region"], wire.national("region"))
    _from_region(msg, region, wire.national("region"))
    version = msg.body["policy_version"]
    current = tables.policy_version(ctx.conn, region)
    if current is not None and version < current:
        raise ClearsimError(ErrorCode.POLICY_STALE,
                            f"region {region} published policy version {version}, older than "
                            f"the registered version {current}", "policy_version")
    tables.put_policy(ctx.conn, region, version,
                      wire.policy_json(wire.policy_from_body(msg.body)), ctx.now())
    # One record in the policy table, keyed by region, read by every region node.
    return [Outgoing("PolicyPublished", POLICIES, region, msg.body)]


# -- filing registry ---------------------------------------------------------------

def register_filing(msg: Message, ctx: HubContext) -> list[Outgoing]:
    body = msg.body
    insuring = _known_region(ctx, body["insuring_region"], wire.national("insuring_region"))
    treating = _known_region(ctx, body["treating_region"],
                             wire.national("treating_region", msg.kind))
    _from_region(msg, insuring, wire.national("insuring_region"))
    tables.put_filing(ctx.conn, body)
    return [Outgoing("FilingRegistered", region_node(treating), msg.correlation_id, body),
            Outgoing("FilingRegistered", region_node(insuring), msg.correlation_id, body)]


# -- one claim: admission, settlement, confirmation --------------------------------

def admit_patient(msg: Message, ctx: HubContext) -> list[Outgoing]:
    body = msg.body
    treating_field = wire.national("treating_region", msg.kind)
    treating = _known_region(ctx, body["treating_region"], treating_field)
    insuring = _known_region(ctx, body["insuring_region"], wire.national("insuring_region"))
    _from_region(msg, treating, treating_field)
    if not tables.insert_claim(ctx.conn, claim_id=msg.correlation_id,
                               visit_id=body["visit_id"], person_id=body["person_id"],
                               insurance_code=body["insurance_code"],
                               insuring_region=insuring, treating_region=treating,
                               hospital=body["hospital"], state=ClaimState.VERIFYING,
                               claim_date=body["admitted_at"].date(), updated_at=ctx.now()):
        raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                            f"claim {msg.correlation_id} was already admitted",
                            wire.national("admission_no"))
    return [Outgoing("AdmitPatient", region_node(insuring), msg.correlation_id, body)]


def admission_verified(msg: Message, ctx: HubContext) -> list[Outgoing]:
    claim = _claim(ctx, msg)
    _from_region(msg, claim["insuring_region"], "sender")
    if tables.withdrawn(claim):   # a verdict that comes after the hospital gave up
        return []
    _expect(msg, claim, ClaimState.VERIFYING)
    tables.record_verdict(ctx.conn, claim, msg.body["accepted"], msg.body["policy_version"],
                          _error_code(msg.body["error"]), ctx.now())
    return [Outgoing(msg.kind, region_node(claim["treating_region"]), msg.correlation_id,
                     msg.body)]


def claim_settled(msg: Message, ctx: HubContext) -> list[Outgoing]:
    claim = _claim(ctx, msg)
    _from_region(msg, claim["treating_region"], "sender")
    _expect(msg, claim, ClaimState.ADMITTED, ClaimState.REVERSED)
    body = msg.body
    tables.record_settlement(ctx.conn, claim, settlement_id=body["settlement_id"],
                             total=body["total"], fund_pay=body["fund_pay"],
                             personal_pay=body["personal_pay"],
                             policy_version=body["policy_version"],
                             settled_on=body["settled_at"].date(), record=record_json(body),
                             now=ctx.now())
    return [Outgoing(msg.kind, region_node(claim["insuring_region"]), msg.correlation_id, body)]


def settlement_confirmed(msg: Message, ctx: HubContext) -> list[Outgoing]:
    claim = _claim(ctx, msg)
    _from_region(msg, claim["insuring_region"], "sender")
    # an answer to a record the hub resent to repair a case (only a claim already answered)
    case = (tables.open_case_for(ctx.conn, claim["claim_id"])
            if claim["state"] in CLEARABLE else None)
    if case is not None:
        return _repaired(ctx, msg, claim, case)
    _expect(msg, claim, ClaimState.SETTLED)
    tables.record_confirmation(ctx.conn, claim, msg.body["agreed"], msg.body["fund_pay"],
                               _error_code(msg.body["cause"]), ctx.now())
    return [Outgoing(msg.kind, region_node(claim["treating_region"]), msg.correlation_id,
                     msg.body)]


def cancel_settlement(msg: Message, ctx: HubContext) -> list[Outgoing]:
    """The treating region cancels a settlement its insuring region disagreed with (2305),
    to settle the claim again: logged, and routed to the insuring region."""
    claim = _claim(ctx, msg)
    _from_region(msg, claim["treating_region"], "sender")
    _expect(msg, claim, ClaimState.MISMATCH)
    if msg.body["settlement_id"] != claim["settlement_id"] or claim["clearing_id"]:
        raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                            f"claim {claim['claim_id']} holds settlement "
                            f"{claim['settlement_id']}"
                            + (f", cleared in {claim['clearing_id']}" if claim["clearing_id"]
                               else "")
                            + f": settlement {msg.body['settlement_id']} cannot be cancelled",
                            wire.national("settlement_id"))
    tables.record_reversal(ctx.conn, claim, ctx.now())
    return [Outgoing(msg.kind, region_node(claim["insuring_region"]), msg.correlation_id,
                     msg.body)]


def claim_rejected(msg: Message, ctx: HubContext) -> list[Outgoing]:
    if interface_refusal(msg.body["error"]):
        return _no_direct_settlement(ctx, msg, tell_treating=False)
    claim = _claim(ctx, msg)
    _from_region(msg, claim["treating_region"], "sender")
    _expect(msg, claim, ClaimState.ADMITTED)
    tables.record_rejection(ctx.conn, claim, msg.body["error"]["code"], ctx.now())
    return [Outgoing(msg.kind, region_node(claim["insuring_region"]), msg.correlation_id,
                     msg.body)]


def reverse_transaction(msg: Message, ctx: HubContext) -> list[Outgoing]:
    """A hospital had no answer and reversed its request (2601): a claim not yet settled
    gets no direct settlement, and the insuring region hears."""
    claim = tables.get_claim(ctx.conn, msg.correlation_id)
    if claim is None:
        return []
    _from_region(msg, claim["treating_region"], "sender")
    if claim["state"] not in (ClaimState.VERIFYING, ClaimState.ADMITTED):
        return []
    tables.record_withdrawal(ctx.conn, claim, ErrorCode.ANSWER_TIMEOUT.value,
                             ctx.now())
    return [Outgoing(msg.kind, region_node(claim["insuring_region"]), msg.correlation_id,
                     msg.body)]


def message_rejected(msg: Message, ctx: HubContext) -> list[Outgoing]:
    """A region refused what the hub routed: the claim stops there, with the cause. Refused
    for its interface (no resend repaired it) before it settled, the claim is not settled
    directly: the treating region hears it, and its hospital sends the patient home."""
    claim = tables.get_claim(ctx.conn, msg.correlation_id)
    if claim is not None:     # only a region of the claim refuses what the hub routed
        speaks_for(msg, [region_node(claim["insuring_region"]),
                         region_node(claim["treating_region"])],
                   f"claim {claim['claim_id']}")
    if interface_refusal(msg.body["error"]):
        return _no_direct_settlement(ctx, msg, tell_treating=True)
    if claim is not None:
        tables.record_failure(ctx.conn, claim, msg.body["error"]["code"], ctx.now())
    return []


def _no_direct_settlement(ctx: HubContext, msg: Message,
                          tell_treating: bool) -> list[Outgoing]:
    """An interface refusal nobody repaired, before the insuring region recorded a
    settlement: no direct settlement. The insuring region hears of the claim again from
    the patient's manual reimbursement."""
    claim = tables.get_claim(ctx.conn, msg.correlation_id)
    if claim is None or claim["state"] not in IN_FLIGHT:
        return []
    if not tell_treating:
        _from_region(msg, claim["treating_region"], "sender")
    tables.record_no_direct(ctx.conn, claim, msg.body["error"]["code"], ctx.now())
    if not tell_treating:
        return []
    return [Outgoing("MessageRejected", region_node(claim["treating_region"]),
                     msg.correlation_id, msg.body)]


# -- daily three-party reconciliation ------------------------------------------------

def _recon_id(day, region: str) -> str:
    return f"RC{day:%Y%m%d}-{region}"


def start_reconciliation(msg: Message, ctx: HubContext) -> list[Outgoing]:
    """Ask every region to compare its ledger of a day's settlements with the hub's; on a
    later attempt ask again those that have not answered, and once the attempts are spent
    turn each one's silence into a case."""
    day, attempt = msg.body["statement_date"], msg.body["attempt"]
    limit = ctx.config.reconciliation.max_attempts
    out = []
    for region in ctx.config.regions:
        held = tables.get_reconciliation(ctx.conn, day, region)
        if attempt > 1 and (held is None or held["state"] != ReconciliationState.ASKED):
            continue
        if attempt > limit:
            tables.escalate_reconciliation(ctx.conn, day, region)
            # one case per settlement left unconfirmed (or one for the day if it had none)
            affected = tables.day_claims(ctx.conn, day, region) or [None]
            for claim in affected:
                settlement_id = claim["settlement_id"] if claim else ""
                tables.insert_case(ctx.conn, case_id=f"{_recon_id(day, region)}-NO_ANSWER"
                                   f"{'-' + settlement_id if settlement_id else ''}",
                                   statement_date=day, region=region,
                                   settlement_id=settlement_id,
                                   claim_id=claim["claim_id"] if claim else None,
                                   cause="NO_ANSWER", owner=region_node(region),
                                   repair="escalate", state=CaseState.ESCALATED,
                                   resolution=f"no answer to {limit} requests: left to people")
            continue
        rows = tables.day_claims(ctx.conn, day, region)
        t = totals(Row(c["settlement_id"], c["total"], c["fund_pay"]) for c in rows)
        tables.ask_region(ctx.conn, day, region, attempt)
        out.append(Outgoing("ReconcileTotals", region_node(region), _recon_id(day, region),
                            bodies.reconcile_totals(region, day, t)))
    return out


def _agree(ctx: HubContext, claim, region: str, when: datetime) -> dict:
    """One more party agrees with the hub; with both regions, all three agree (the change,
    for ``tables.record_agreements``)."""
    treating = claim["recon_treating"] or claim["treating_region"] == region
    insuring = claim["recon_insuring"] or claim["insuring_region"] == region
    done = treating and insuring and claim["reconciled_on"] is None
    return tables.agreement(claim["claim_id"], treating=treating, insuring=insuring,
                            reconciled_on=when.date() if done else None,
                            reconciled_at=ctx.now() if done else None)


def totals_reconciled(msg: Message, ctx: HubContext) -> list[Outgoing]:
    body = msg.body
    region, day = body["settling_party"], body["period_start"]
    _from_region(msg, region, wire.national("settling_party"))
    held = tables.get_reconciliation(ctx.conn, day, region)
    if held is None or held["state"] != ReconciliationState.ASKED:
        return []                          # a late answer to a repeated request
    rows = tables.day_claims(ctx.conn, day, region)
    if body["result"] == "0":
        tables.record_agreements(ctx.conn, [_agree(ctx, claim, region, msg.sim_time)
                                            for claim in rows])
        tables.set_reconciliation_state(ctx.conn, day, region, ReconciliationState.BALANCED)
        return []
    tables.set_reconciliation_state(ctx.conn, day, region, ReconciliationState.DETAILING)
    return [Outgoing("ReconcileDetails", region_node(region), msg.correlation_id,
                     bodies.reconcile_details(region, day, rows))]


def details_reconciled(msg: Message, ctx: HubContext) -> list[Outgoing]:
    """Every row not balanced becomes a case; an insuring region's ledger is repaired by
    resending the hub's record, anything else is escalated to people."""
    body = msg.body
    region, day = body["settling_party"], body["period_start"]
    _from_region(msg, region, wire.national("settling_party"))
    held = tables.get_reconciliation(ctx.conn, day, region)
    if held is None or held["state"] != ReconciliationState.DETAILING:
        return []
    out = []
    agreements = []
    escalations = 0
    for row in body["rows"]:
        claim = tables.claim_by_settlement(ctx.conn, row["settlement_id"])
        if row["result"] == BALANCED:
            agreements.append(_agree(ctx, claim, region, msg.sim_time))
            continue
        case = case_for(row["result"], msg.sender,
                        claim is not None and claim["insuring_region"] == region)
        case_id = f"{msg.correlation_id}-{row['settlement_id']}"
        escalated = case.repair == "escalate"
        escalations += escalated
        tables.insert_case(ctx.conn, case_id=case_id, statement_date=day, region=region,
                           settlement_id=row["settlement_id"],
                           claim_id=None if claim is None else claim["claim_id"],
                           cause=case.cause, owner=case.owner, repair=case.repair,
                           state=CaseState.ESCALATED if escalated else CaseState.OPEN,
                           resolution="left to people: the hub cannot repair this ledger"
                           if escalated else None)
        if not escalated:
            out.append(Outgoing("ClaimSettled", region_node(region), claim["claim_id"],
                                {**record_body(claim["record"]), "repair_of_case": case_id}))
    tables.record_agreements(ctx.conn, agreements)
    state = (ReconciliationState.REPAIRING if tables.open_cases(ctx.conn, day, region)
             else ReconciliationState.ESCALATED if escalations
             else ReconciliationState.BALANCED)
    tables.set_reconciliation_state(ctx.conn, day, region, state)
    return out


def _repaired(ctx: HubContext, msg: Message, claim, case) -> list[Outgoing]:
    agreed = msg.body["agreed"]
    tables.repair_case(ctx.conn, case["case_id"],
                       f"{case['repair']}: the hub resent its record and "
                       f"{msg.sender} recorded it (agreed: {agreed})")
    tables.record_agreements(ctx.conn, [_agree(ctx, claim, claim["insuring_region"],
                                               msg.sim_time)])
    if not tables.open_cases(ctx.conn, case["statement_date"], case["region"]):
        tables.set_reconciliation_state(ctx.conn, case["statement_date"], case["region"],
                                        ReconciliationState.REPAIRED)
    return []


# -- audit refusals and appeals ------------------------------------------------------

def claim_refused(msg: Message, ctx: HubContext) -> list[Outgoing]:
    claim = _claim(ctx, msg)
    _from_region(msg, claim["insuring_region"], "sender")
    body = msg.body
    tables.put_refusal(ctx.conn, settlement_id=body["settlement_id"],
                       claim_id=claim["claim_id"], insuring_region=claim["insuring_region"],
                       treating_region=claim["treating_region"], rule=body["rule"],
                       amount=body["refused_amount"], refused_on=msg.sim_time.date())
    return [Outgoing(msg.kind, region_node(claim["treating_region"]), claim["claim_id"], body)]


def _refusal(ctx: HubContext, msg: Message):
    settlement_id = msg.body["settlement_id"]
    return require(tables.get_refusal(ctx.conn, settlement_id),
                   what=f"refusal of settlement {settlement_id}", holder="the hub",
                   kind=msg.kind, field=wire.national("settlement_id"))


def appeal_filed(msg: Message, ctx: HubContext) -> list[Outgoing]:
    refusal = _refusal(ctx, msg)
    _from_region(msg, refusal["treating_region"], "sender")
    return [Outgoing(msg.kind, region_node(refusal["insuring_region"]), msg.correlation_id,
                     msg.body)]


def appeal_decided(msg: Message, ctx: HubContext) -> list[Outgoing]:
    refusal = _refusal(ctx, msg)
    _from_region(msg, refusal["insuring_region"], "sender")
    tables.record_appeal(ctx.conn, refusal["settlement_id"], msg.body["upheld"],
                         msg.sim_time.date())
    return [Outgoing(msg.kind, region_node(refusal["treating_region"]), msg.correlation_id,
                     msg.body)]


# -- monthly clearing ----------------------------------------------------------------

def clearing_notice(clearing_id: str, month: str, position, state: str) -> dict:
    """A region's position in a clearing window (``position``: region, payable, receivable)."""
    payable, receivable = position["payable"], position["receivable"]
    return {"clearing_id": clearing_id, "month": month, "region": position["region"],
            "payable": payable, "receivable": receivable, "net": payable - receivable,
            "clearing_state": state}


def open_clearing(msg: Message, ctx: HubContext) -> list[Outgoing]:
    """Net every region's position for a month and send each its clearing notice. A window
    does not open while a claim that may belong to it is still in flight."""
    month = msg.body["month"]
    if tables.get_clearing(ctx.conn, month) is not None:
        raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                            f"the clearing window {month} is already open",
                            wire.national("month"))
    last = month_end(datetime.strptime(month, "%Y%m").date())
    in_flight = tables.in_flight_claims(ctx.conn, last)
    if in_flight:
        raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                            f"the clearing window {month} cannot open: {len(in_flight)} claims "
                            f"are in flight ({', '.join(in_flight[:5])})",
                            wire.national("month"))
    window = tables.claims_to_clear(ctx.conn, month)
    flows = [(c["insuring_region"], c["treating_region"], c["fund_pay"]) for c in window]
    clearing_id = f"CLR{month}"
    # refusals deducted, upheld appeals returned, in the window of the month of each
    deducted = tables.refusals_to_deduct(ctx.conn, month)
    returned = tables.appeals_to_return(ctx.conn, month)
    flows += [(r["insuring_region"], r["treating_region"], -r["amount"]) for r in deducted]
    flows += [(r["insuring_region"], r["treating_region"], r["amount"]) for r in returned]
    tables.mark_deducted(ctx.conn, (r["settlement_id"] for r in deducted), clearing_id)
    tables.mark_returned(ctx.conn, (r["settlement_id"] for r in returned), clearing_id)
    table = positions(flows, ctx.config.regions)
    tables.insert_window(ctx.conn, clearing_id, month, [c["claim_id"] for c in window], table)
    when = start_of(clearing_dates(month, ctx.config.calendar, ctx.config.clearing).notice)
    return [Outgoing("ClearingNotice", region_node(p.region), clearing_id,
                     clearing_notice(clearing_id, month, {
                         "region": p.region, "payable": p.payable,
                         "receivable": p.receivable}, WindowState.NOTIFIED), sim_time=when)
            for p in table.values()]


def _position(ctx: HubContext, msg: Message):
    region, clearing_id = msg.body["region"], msg.body["clearing_id"]
    _from_region(msg, region, wire.national("region"))
    return require(tables.get_position(ctx.conn, clearing_id, region),
                   what=f"clearing position {clearing_id} for region {region}",
                   holder="the hub", kind=msg.kind, field=wire.national("clearing_id"))


def _failed(ctx: HubContext, msg: Message, position, why: str) -> list[Outgoing]:
    """The window fails: the region's figure is not the hub's. Reconciliation has to find
    the difference before money moves; the region hears why."""
    tables.set_window_state(ctx.conn, position["clearing_id"], WindowState.FAILED)
    return [Outgoing("ClearingNotice", msg.sender, msg.correlation_id,
                     clearing_notice(position["clearing_id"], msg.body["month"], position,
                                     f"failed: {why}"[:200]))]


def clearing_confirmed(msg: Message, ctx: HubContext) -> list[Outgoing]:
    position = _position(ctx, msg)
    clearing_id, region = position["clearing_id"], position["region"]
    if msg.body["amount"] != position["payable"]:
        return _failed(ctx, msg, position,
                       f"region {region} confirmed {format_fen(msg.body['amount'])} but owes "
                       f"{format_fen(position['payable'])} as insuring region")
    tables.confirm_position(ctx.conn, clearing_id, region)
    if tables.all_confirmed(ctx.conn, clearing_id):
        tables.set_window_state(ctx.conn, clearing_id, WindowState.CONFIRMED)
    return []


def clearing_paid(msg: Message, ctx: HubContext) -> list[Outgoing]:
    """Record a region's payment; once every region has paid, disburse to net receivers."""
    position = _position(ctx, msg)
    clearing_id, region = position["clearing_id"], position["region"]
    due = max(position["payable"] - position["receivable"], 0)
    if msg.body["amount"] != due:
        return _failed(ctx, msg, position, f"region {region} paid "
                                           f"{format_fen(msg.body['amount'])}; its net "
                                           f"position is {format_fen(due)}")
    tables.record_payment(ctx.conn, clearing_id, region, due)
    month = msg.body["month"]
    if tables.get_clearing(ctx.conn, month)["state"] == WindowState.FAILED \
            or not tables.all_confirmed_and_paid(ctx.conn, clearing_id):
        return []
    tables.set_window_state(ctx.conn, clearing_id, WindowState.PAID)
    when = start_of(clearing_dates(month, ctx.config.calendar, ctx.config.clearing).disbursement)
    out = []
    for p in tables.get_positions(ctx.conn, clearing_id):
        amount = max(p["receivable"] - p["payable"], 0)
        tables.record_disbursement(ctx.conn, clearing_id, p["region"], amount)
        out.append(Outgoing("FundsDisbursed", region_node(p["region"]), clearing_id, {
            "clearing_id": clearing_id, "month": month, "region": p["region"],
            "amount": amount}, sim_time=when))
    tables.set_window_state(ctx.conn, clearing_id, WindowState.DISBURSED)
    return out


HANDLERS = {
    "PublishPolicy": publish_policy,
    "RegisterFiling": register_filing,
    "AdmitPatient": admit_patient,
    "AdmissionVerified": admission_verified,
    "ClaimSettled": claim_settled,
    "SettlementConfirmed": settlement_confirmed,
    "CancelSettlement": cancel_settlement,
    "ClaimRejected": claim_rejected,
    "ReverseTransaction": reverse_transaction,
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

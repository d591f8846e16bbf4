"""The hospitals of one treating region: admit, upload, settle at discharge, track receivables.

One hospital node hosts every designated hospital of its region (they share the region's
topic), so topics and consumer groups grow with regions, never with hospitals. Every
handler is ``(message, context) -> messages to send``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from clearsim import bodies, db, wire
from clearsim.domain.settlement import ChargeItem
from clearsim.errors import ClearsimError, ErrorCode, Rejection, interface_refusal
from clearsim.faults import NO_FAULTS, Fault, Faults, retry_waits_ms
from clearsim.handling import Context, require, wall_clock
from clearsim.messages import HUB, Message, Outgoing, hospitals_node, region_node
from clearsim.money import format_fen
from clearsim.senders import speaks_for, speaks_for_hospital
from hospital_node import tables
from hospital_node.tables import ClaimState, ReconciliationState


@dataclass(frozen=True)
class HospitalsConfig:
    region: str
    hospitals: Mapping[str, int]   # hospital id -> level


class HospitalsContext(Context[HospitalsConfig]):
    """The hospitals' handler context; ``platform`` is their region's platform."""

    @classmethod
    def of(cls, conn, config: HospitalsConfig,
           clock: Callable[[], datetime] = wall_clock,
           faults: Faults = NO_FAULTS) -> "HospitalsContext":
        return cls(conn, config, hospitals_node(config.region), clock, faults)

    @property
    def platform(self) -> str:
        return region_node(self.config.region)


def _claim(ctx: HospitalsContext, msg: Message, *states: ClaimState):
    return _require(ctx, msg, tables.get_claim(ctx.conn, msg.correlation_id), *states)


def _require(ctx: HospitalsContext, msg: Message, claim, *states: ClaimState):
    """``claim`` (the row of ``msg``'s claim, just read), which must be in one of ``states``."""
    return require(claim, *states, what=f"claim {msg.correlation_id!r}",
                   holder=f"the hospital node of region {ctx.config.region}", kind=msg.kind)


def _items(claim) -> list[ChargeItem]:
    return wire.items_from_json(claim["items"])


# -- bodies sent to the platform ---------------------------------------------------------

def read_card(ctx: HospitalsContext, claim_id: str, body: dict, day) -> tuple[str, str]:
    """(person id, insurance code) as the patient's card gives them at admission: the
    national record's, unless an ``identity`` fault strikes (the fail point), when one of
    them differs from it (310 and 390 swapped, or a person id with a stray check
    character). The claim itself keeps the true data, for the manual reimbursement."""
    person_id, insurance_code = body["person_id"], body["insurance_code"]
    fault = ctx.faults.fire("identity", day, claim_id, claim_id=claim_id)
    if fault is None:
        return person_id, insurance_code
    if fault.get("field") == "person_id":
        return f"{person_id}X", insurance_code
    return person_id, {"310": "390", "390": "310"}.get(insurance_code, "390")


def admit_patient(ctx: HospitalsContext, body: dict, card: tuple[str, str]) -> dict:
    person_id, insurance_code = card
    return {"admission_no": body["admission_no"], "visit_id": None,
            "person_id": person_id, "insurance_code": insurance_code,
            "insuring_region": body["insuring_region"], "treating_region": ctx.config.region,
            "hospital": body["hospital"], "care_type": "21",
            "admitted_at": body["admitted_at"]}


def reimburse_manually(ctx: HospitalsContext, claim, settled_at: datetime) -> dict:
    return {"admission_no": claim["claim_id"], "person_id": claim["person_id"],
            "insurance_code": claim["insurance_code"], "treating_region": ctx.config.region,
            "hospital": claim["hospital"], "settled_at": settled_at,
            "items": bodies.charge_lines(_items(claim))}


def upload_charges(claim, visit_id: str) -> dict:
    return {"admission_no": claim["claim_id"], "visit_id": visit_id,
            "items": bodies.charge_lines(_items(claim))}


def settle_claim(claim, discharged_at: datetime) -> dict:
    return {"admission_no": claim["claim_id"], "visit_id": claim["visit_id"],
            "insurance_code": claim["insurance_code"], "total": claim["total"],
            "discharged_at": discharged_at}


def appeal_filed(claim, refusal: dict) -> dict:
    return {"settlement_id": refusal["settlement_id"], "admission_no": claim["claim_id"],
            "amount": refusal["refused_amount"],
            "reason": f"the hospital contests the {refusal['rule']} refusal"}


# -- one claim, from admission to discharge ------------------------------------------------

def submit_claim(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    """A patient arrives: register the admission with the region's platform (2401)."""
    body = msg.body
    if body["hospital"] not in ctx.config.hospitals:
        raise ClearsimError(ErrorCode.HOSPITAL_UNKNOWN,
                            f"hospital {body['hospital']!r} is not hosted by {ctx.node_id}",
                            wire.national("hospital"))
    items = [ChargeItem(code=line["catalog_code"], amount=line["amount"])
             for line in body["items"]]
    if not tables.admit(ctx.conn, msg.correlation_id, hospital=body["hospital"],
                        person_id=body["person_id"], insurance_code=body["insurance_code"],
                        insuring_region=body["insuring_region"],
                        admitted_at=body["admitted_at"], items=wire.items_to_json(items),
                        total=sum(item.amount for item in items), submitted_at=ctx.now()):
        raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                            f"claim {msg.correlation_id} was already submitted",
                            wire.national("admission_no"))
    card = read_card(ctx, msg.correlation_id, body, msg.sim_time.date())
    return [Outgoing("AdmitPatient", ctx.platform, msg.correlation_id,
                     admit_patient(ctx, body, card))]


def admission_answered(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    claim = tables.get_claim(ctx.conn, msg.correlation_id)
    if _given_up(claim):
        return []
    claim = _require(ctx, msg, claim, ClaimState.ADMITTING)
    body = msg.body
    if body["result_code"] != 0:
        tables.reject(ctx.conn, claim, body["error"], ctx.now())
        return []
    if not body["direct"]:
        # No direct settlement: the patient pays everything now and claims at home.
        tables.go_manual(ctx.conn, claim, visit_id=body["visit_id"], error=body["error"],
                         answered_at=ctx.now())
        return [Outgoing("ReimburseManually", region_node(claim["insuring_region"]),
                         claim["claim_id"], reimburse_manually(ctx, claim, msg.sim_time))]
    tables.start_charging(ctx.conn, claim, body["visit_id"], asked_at=ctx.now())
    return [Outgoing("UploadCharges", ctx.platform, claim["claim_id"],
                     upload_charges(claim, body["visit_id"]))]


def charges_answered(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    claim = tables.get_claim(ctx.conn, msg.correlation_id)
    if _given_up(claim):
        return []
    claim = _require(ctx, msg, claim, ClaimState.CHARGING)
    if msg.body["result_code"] != 0:
        tables.reject(ctx.conn, claim, msg.body["error"], ctx.now())
        return []
    tables.start_settling(ctx.conn, claim, asked_at=ctx.now())
    return [Outgoing("SettleClaim", ctx.platform, claim["claim_id"],
                     settle_claim(claim, msg.sim_time))]


def settlement_answered(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    claim = _claim(ctx, msg, ClaimState.SETTLING, ClaimState.SETTLED)
    body = msg.body
    if claim["state"] == ClaimState.SETTLED:
        # The platform sent its record again after reconciliation: it is authoritative.
        if body["result_code"] != 0 or body["settlement_id"] != claim["settlement_id"]:
            raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                                f"claim {claim['claim_id']} is settled as "
                                f"{claim['settlement_id']}; a correction must carry that "
                                "settlement", wire.national("settlement_id"))
        tables.correct_settlement(ctx.conn, claim, fund_pay=body["fund_pay"],
                                  personal_pay=body["personal_pay"])
        return []
    if body["result_code"] != 0:
        tables.reject(ctx.conn, claim, body["error"], ctx.now())
        return []
    # The answer carries the simulated moment of the discharge it settles: the platform
    # books the settlement on that day, and the two reconcile by it.
    tables.settle(ctx.conn, claim, settlement_id=body["settlement_id"],
                  settled_on=msg.sim_time.date(), fund_pay=body["fund_pay"],
                  personal_pay=body["personal_pay"], answered_at=ctx.now())
    return []


def claim_rejected(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    """A party further on refused the claim: it fails, unless it has already ended. Refused
    for its interface before it settled, the patient claims at home instead."""
    claim = _claim(ctx, msg)
    if _falls_back(claim, msg):
        return _go_manual(ctx, claim, msg.body["error"], tell_platform=False)
    if tables.CLAIM.allowed(claim["state"], ClaimState.FAILED):
        tables.fail(ctx.conn, claim, msg.body["error"], ctx.now())
    return []


def message_rejected(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    """The platform refused what we sent: the claim ends here, with its stated cause. Refused
    for its interface (and no resend repaired it) before it settled, the patient claims at
    home instead. Only the platform, or the claim's insuring region (about a manual
    reimbursement), refuses for a claim of ours."""
    claim = tables.get_claim(ctx.conn, msg.correlation_id)
    if claim is not None:
        speaks_for(msg, [ctx.platform, region_node(claim["insuring_region"])],
                   f"claim {claim['claim_id']}")
    if claim is not None and _falls_back(claim, msg):
        return _go_manual(ctx, claim, msg.body["error"], tell_platform=True)
    if claim is not None and tables.CLAIM.allowed(claim["state"], ClaimState.REJECTED):
        tables.reject(ctx.conn, claim, msg.body["error"], ctx.now())
    return []


# -- no answer: retries, then the fallback (an outage's schedule) -------------------------

# The request a claim waits on in each state, and its national transaction number.
REQUESTS = {ClaimState.ADMITTING: ("AdmitPatient", "2401"),
            ClaimState.CHARGING: ("UploadCharges", "2301"),
            ClaimState.SETTLING: ("SettleClaim", "2304")}


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def retry_unanswered(ctx: HospitalsContext) -> list[Outgoing]:
    """The hospitals' timer. A request with no answer is sent again, the same message with
    the same msgid (a node that gets a message twice sends again what it caused, so a retry
    is idempotent end to end), on the tenacity schedule of the run's outage; when its
    attempts are spent, the outage's fallback."""
    out = []
    now = ctx.now()
    for claim in tables.awaiting_answer(ctx.conn):
        claim_id, insuring = claim["claim_id"], claim["insuring_region"]
        path = ((ctx.platform,) if insuring == ctx.config.region
                else (ctx.platform, HUB, region_node(insuring)))
        fault = ctx.faults.retry_schedule(*path)
        if fault is None:
            continue
        kind, infno = REQUESTS[claim["state"]]
        waits = retry_waits_ms(fault, claim_id, kind)
        sent = claim["attempts"]
        if now < _utc(claim["asked_at"]) + timedelta(milliseconds=sum(waits[:sent])):
            continue
        if sent == 1:
            ctx.faults.noticed(ErrorCode.ANSWER_TIMEOUT.value, claim_id, None,
                               f"no answer to {kind} within {waits[0]} ms")
        if sent < len(waits):
            msgid = db.resend(ctx.conn, claim_id, kind)
            tables.count_attempt(ctx.conn, claim)
            ctx.faults.did(fault, "resent", claim_id,
                           f"{kind} {msgid} sent again (attempt {sent + 1} of {len(waits)})")
            continue
        out += fall_back(ctx, claim, fault, kind, infno)
    return out


def fall_back(ctx: HospitalsContext, claim, fault: Fault, kind: str,
              infno: str) -> list[Outgoing]:
    """Retries spent. ``wait``: the claim waits for its answer. ``manual``: the patient pays
    everything and claims it back at home; the hospital reverses the unanswered request
    (2601) so its platform, the hub and the insuring region drop the direct settlement,
    and an answer that comes late is ignored. Once the settlement has been asked for, it
    may already be booked: such a claim always waits."""
    claim_id = claim["claim_id"]
    fallback, why = fault.get("fallback"), ""
    if fallback == "manual" and claim["state"] == ClaimState.SETTLING:
        fallback, why = "wait", " (the settlement asked for may already be booked)"
    tables.give_up(ctx.conn, claim, fallback)
    ctx.faults.did(fault, "fallback", claim_id,
                   f"{fallback}: no answer to {kind} after {claim['attempts']} attempts{why}")
    if fallback != "manual":
        return []
    rejection = Rejection(ErrorCode.ANSWER_TIMEOUT,
                          f"no answer to {kind} from {ctx.platform} after "
                          f"{claim['attempts']} attempts: the patient pays the whole bill "
                          "and claims it back at home", None, ctx.node_id)
    tables.go_manual(ctx.conn, claim, visit_id=claim["visit_id"],
                     error=wire.error_out(rejection, ctx.node_id), answered_at=ctx.now())
    when = _utc(claim["admitted_at"])
    return [Outgoing("ReverseTransaction", ctx.platform, claim_id, {
                "original_msgid": db.latest_msgid(ctx.conn, claim_id, kind) or "",
                "original_transaction": infno, "admission_no": claim_id}, sim_time=when),
            Outgoing("ReimburseManually", region_node(claim["insuring_region"]), claim_id,
                     reimburse_manually(ctx, claim, when), sim_time=when)]


def _given_up(claim) -> bool:
    """An answer (to the request of ``claim``, a row or None) the hospital gave up on (its
    patient went to manual reimbursement): too late, it changes nothing."""
    return (claim is not None and claim["fallback"] == "manual"
            and claim["state"] == ClaimState.MANUAL)


def _falls_back(claim, msg: Message) -> bool:
    return (interface_refusal(msg.body["error"])
            and tables.CLAIM.allowed(claim["state"], ClaimState.MANUAL))


def _go_manual(ctx: HospitalsContext, claim, error: dict,
               tell_platform: bool) -> list[Outgoing]:
    """No direct settlement after all: the patient pays the whole total and claims it at
    home; the platform, when it is not the one that gave up, hears that it will not
    settle the claim."""
    tables.go_manual(ctx.conn, claim, visit_id=claim["visit_id"], error=error,
                     answered_at=ctx.now())
    out = [Outgoing("ReimburseManually", region_node(claim["insuring_region"]),
                    claim["claim_id"], reimburse_manually(ctx, claim, claim["admitted_at"]))]
    if tell_platform:
        out.append(Outgoing("ClaimRejected", ctx.platform, claim["claim_id"], {
            "admission_no": claim["claim_id"], "visit_id": claim["visit_id"],
            "person_id": claim["person_id"], "insuring_region": claim["insuring_region"],
            "treating_region": ctx.config.region, "hospital": claim["hospital"],
            "error": error}))
    return out


# -- paybacks, refusals and appeals -----------------------------------------------------------

def _settlements(ctx: HospitalsContext, settlement_ids: list[str], field: str,
                 done: str) -> dict:
    """Claims by settlement id, each known and not yet ``done`` (paid, deducted, returned)."""
    claims = {c["settlement_id"]: c for c in tables.by_settlement_ids(ctx.conn, settlement_ids)}
    missing = sorted(set(settlement_ids) - set(claims))
    if missing:
        raise ClearsimError(ErrorCode.CLAIM_UNKNOWN,
                            f"payment for unknown settlements {', '.join(missing[:5])}",
                            wire.national(field))
    twice = sorted(s for s, c in claims.items() if c[done] is not None)
    if twice:
        raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                            f"settlements already counted in a payment: {', '.join(twice[:5])}",
                            wire.national(field))
    return claims


def hospital_paid(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    """The region pays back what the hospital advanced, each settlement once and in full,
    less the refusals decided in the month, plus the appeals upheld in it."""
    body = msg.body
    speaks_for_hospital(msg, body["hospital"], ctx.config.hospitals, ctx.config.region,
                        wire.national("hospital"))
    claims = _settlements(ctx, body["settlement_ids"], "settlement_ids", "paid_on")
    refused = _settlements(ctx, body["refused_settlement_ids"], "refused_settlement_ids",
                           "deducted_on")
    upheld = _settlements(ctx, body["upheld_settlement_ids"], "upheld_settlement_ids",
                          "returned_on")
    expected = (sum(c["fund_pay"] for c in claims.values())
                - sum(c["refused_amount"] or 0 for c in refused.values())
                + sum(c["refused_amount"] or 0 for c in upheld.values()
                      if c["appeal_upheld"]))
    if body["amount"] != expected:
        raise ClearsimError(ErrorCode.SETTLEMENT_MISMATCH,
                            f"payment of {format_fen(body['amount'])} where the hospital "
                            f"expects {format_fen(expected)}", "amount")
    day = msg.sim_time.date()
    tables.mark_paid(ctx.conn, [c["claim_id"] for c in claims.values()], day, ctx.now())
    tables.mark_deducted(ctx.conn, [c["claim_id"] for c in refused.values()], day)
    tables.mark_returned(ctx.conn, [c["claim_id"] for c in upheld.values()], day)
    return []


def claim_refused(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    """The insuring region refused part of a settlement: record it, and appeal."""
    claim = _claim(ctx, msg, ClaimState.SETTLED)
    tables.record_refusal(ctx.conn, claim, msg.body["refused_amount"], msg.sim_time.date())
    return [Outgoing("AppealFiled", ctx.platform, claim["claim_id"],
                     appeal_filed(claim, msg.body))]


def appeal_decided(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    claim = _claim(ctx, msg, ClaimState.SETTLED)
    tables.record_appeal_decision(ctx.conn, claim, msg.body["upheld"], msg.sim_time.date())
    return []


# -- daily reconciliation with the platform (3201 / 3202, institution -> platform) -----

def start_reconciliation(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    """Every hospital with settlements on the day sends its totals to its platform."""
    day = msg.body["statement_date"]
    out = []
    for hospital, totals in tables.day_totals(ctx.conn, day).items():
        tables.put_reconciliation(ctx.conn, day, hospital, ReconciliationState.ASKED)
        out.append(Outgoing("ReconcileTotals", ctx.platform, f"HRC{day:%Y%m%d}-{hospital}",
                            bodies.reconcile_totals(hospital, day, totals)))
    return out


def totals_reconciled(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    body = msg.body
    hospital, day = body["settling_party"], body["period_start"]
    if body["result"] == "0":
        tables.put_reconciliation(ctx.conn, day, hospital, ReconciliationState.BALANCED)
        return []
    tables.put_reconciliation(ctx.conn, day, hospital, ReconciliationState.DETAILING)
    return [Outgoing("ReconcileDetails", ctx.platform, msg.correlation_id,
                     bodies.reconcile_details(hospital, day,
                                              tables.settled_on(ctx.conn, day, hospital)))]


def details_reconciled(msg: Message, ctx: HospitalsContext) -> list[Outgoing]:
    body = msg.body
    results = {r["settlement_id"]: r["result"] for r in body["rows"]}
    state = (ReconciliationState.DIFFERENCES if any(results.values())
             else ReconciliationState.BALANCED)
    tables.put_reconciliation(ctx.conn, body["period_start"], body["settling_party"], state,
                              results)
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

"""A region as **treating region**: patients in its hospitals, wherever they are insured.

It admits patients in its hospitals (asking the insuring region for its verdict), classes
their charges with its own catalog, settles with the insuring region's policy as the hub
last distributed it, and passes the answers on to its hospitals. When the patient is
insured here too, the insuring role's services are called directly instead of through
the hub.

Two fail points strike here: ``mapping`` (a catalog code classed wrongly when the charges
are classed) and ``policy`` (the copy of the insuring region's policy settled with is stale
or wrong). When the insuring region's recomputation names such a cause and the run repairs
(``ctx.faults.repair``), the settlement is reversed (``CancelSettlement``, 2305, through the
hub) and the claim settled again under a new settlement id with the copy as the hub
distributed it and the published catalog; only that settlement is answered to the hospital.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

from clearsim import wire
from clearsim.domain.catalog import Catalog, CatalogItem
from clearsim.domain.policy import FilingType, InsuranceType, Policy
from clearsim.domain.settlement import Settlement, TierChoice, choose_tier, settle
from clearsim.errors import ClearsimError, ErrorCode, Rejection, interface_refusal
from clearsim.handling import require
from clearsim.messages import HUB, Message, Outgoing, hospitals_node
from clearsim.money import format_fen
from clearsim.senders import speaks_for
from region_node import insuring, tables
from region_node.common import (REPAIRABLE, RegionContext, cached_policy, log_event,
                                settlement_json)
from region_node.fail_points import catalog_for, policy_copy, struck_mapping
from region_node.tables import InsuredState, Role, TreatedState


def _treated(ctx: RegionContext, msg: Message, *states: TreatedState):
    return _require(ctx, msg, tables.get_treated(ctx.conn, msg.correlation_id), *states)


def _require(ctx: RegionContext, msg: Message, claim, *states: TreatedState):
    """``claim`` (the row of ``msg``'s claim, just read), which must be in one of ``states``."""
    return require(claim, *states, what=f"claim {msg.correlation_id}",
                   holder=f"region {ctx.me}", kind=msg.kind)


# -- bodies sent to the hospitals and the hub ------------------------------------------------

def admission_answered(claim, verdict: dict) -> dict:
    return {"admission_no": verdict["admission_no"], "visit_id": claim["visit_id"],
            "result_code": 0, "direct": verdict["accepted"],
            "filing_type": verdict["filing_type"], "error": verdict["error"]}


def charges_answered(claim, items: list[dict], error: dict | None) -> dict:
    return {"admission_no": claim["claim_id"], "visit_id": claim["visit_id"],
            "result_code": 0 if error is None else -1, "items": items, "error": error}


def settlement_answered(ctx: RegionContext, claim, settlement: dict | None, *,
                        result_code: int, error: dict | None) -> Outgoing:
    """The hospital's answer to SettleClaim (also sent again after reconciliation)."""
    def amount(key: str) -> int:
        return 0 if settlement is None else settlement[key]
    return Outgoing("SettlementAnswered", hospitals_node(ctx.me), claim["claim_id"], {
        "settlement_id": claim["settlement_id"] if settlement else None,
        "visit_id": claim["visit_id"], "admission_no": claim["claim_id"],
        "result_code": result_code, "total": amount("total"), "fund_pay": amount("fund_pay"),
        "personal_pay": amount("personal_pay"), "account_pay": 0, "error": error})


def claim_rejected(ctx: RegionContext, claim, error: dict) -> dict:
    return {"admission_no": claim["claim_id"], "visit_id": claim["visit_id"],
            "person_id": claim["person_id"], "insuring_region": claim["insuring_region"],
            "treating_region": ctx.me, "hospital": claim["hospital"], "error": error}


def classed(line_no: str, code: str, amount: int, entry: CatalogItem) -> dict:
    """One charge line as a catalog classes it (a 2301 answer's line, a ClaimSettled line)."""
    share = entry.b_selfpay_share
    return {"line_no": line_no, "catalog_code": code, "item_class": entry.item_class.value,
            "amount": amount, "b_selfpay_share": None if share is None else wire.ratio_out(share)}


def claim_settled(ctx: RegionContext, claim, s: Settlement, catalog: Catalog) -> dict:
    """The ClaimSettled body of the settlement ``claim`` holds, its lines as ``catalog``
    classed them."""
    items = wire.items_from_json(claim["items"])
    return {
        "settlement_id": claim["settlement_id"], "visit_id": claim["visit_id"],
        "admission_no": claim["claim_id"], "person_id": claim["person_id"],
        "insurance_code": claim["insurance_code"], "insuring_region": claim["insuring_region"],
        "treating_region": ctx.me, "hospital": claim["hospital"],
        "settled_at": _aware(claim["discharged_at"]),
        "total": s.total, "class_a": s.class_a, "class_b": s.class_b, "class_c": s.class_c,
        "b_selfpay": s.b_selfpay, "in_scope": s.in_scope, "deductible": s.deductible,
        "ratio": wire.ratio_out(s.ratio), "pooled_fund_pay": s.fund_pay,
        "fund_pay": s.fund_pay, "account_pay": 0, "personal_pay": s.personal_pay,
        "tier": s.tier, "policy_version": s.policy_version, "filing_type": claim["filing_type"],
        "item_counts": dict(Counter(code for code, _ in claim["items"])),
        "items": [classed(f"{n:04d}", item.code, item.amount, catalog.get(item.code))
                  for n, item in enumerate(items, start=1)],
    }


def _aware(moment: datetime) -> datetime:
    """A moment read back from a database that drops the zone (SQLite) is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


# -- admission -----------------------------------------------------------------------------

def admit_patient(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """One of our hospitals admits a patient: ask the insuring region for its verdict."""
    body = msg.body
    claim_id = msg.correlation_id
    if body["treating_region"] != ctx.me:
        raise ClearsimError(ErrorCode.REGION_UNKNOWN,
                            f"admission for treating region {body['treating_region']} sent to "
                            f"{ctx.me}", wire.national("treating_region", msg.kind))
    if body["hospital"] not in ctx.config.hospitals:
        raise ClearsimError(ErrorCode.HOSPITAL_UNKNOWN,
                            f"hospital {body['hospital']!r} is not designated in region "
                            f"{ctx.me}", wire.national("hospital"))
    if body["insuring_region"] not in ctx.config.regions:
        raise ClearsimError(ErrorCode.REGION_UNKNOWN,
                            f"insuring region {body['insuring_region']!r} is not connected to "
                            "the national platform", wire.national("insuring_region"))
    visit_id = f"M{ctx.me}-{claim_id}"
    claim = tables.admit_treated(ctx.conn, claim_id, visit_id=visit_id,
                                 person_id=body["person_id"],
                                 insurance_code=body["insurance_code"],
                                 insuring_region=body["insuring_region"],
                                 hospital=body["hospital"], admitted_at=body["admitted_at"])
    if claim is None:
        raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                            f"claim {claim_id} was already admitted",
                            wire.national("admission_no"))
    admission = {**body, "visit_id": visit_id}
    if body["insuring_region"] == ctx.me:   # our own insured: we give the verdict ourselves
        verdict = insuring.verify_admission(ctx, claim_id, admission)
        return take_verdict(ctx, claim, verdict)
    return [Outgoing("AdmitPatient", HUB, claim_id, admission)]


def admission_verified(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """The insuring region's verdict, through the hub (too late for a reversed claim)."""
    claim = tables.get_treated(ctx.conn, msg.correlation_id)
    if claim is not None and tables.reversed_(claim):
        return []
    return take_verdict(ctx, _require(ctx, msg, claim, TreatedState.VERIFYING), msg.body)


def take_verdict(ctx: RegionContext, claim, verdict: dict) -> list[Outgoing]:
    """Keep what the insuring region said (filing, policy version, cap used) and pass the
    verdict on to the hospital."""
    tables.take_verdict(ctx.conn, claim, accepted=verdict["accepted"],
                        filing_type=verdict["filing_type"],
                        policy_version=verdict["policy_version"], cap_used=verdict["cap_used"],
                        error=verdict["error"])
    return [Outgoing("AdmissionAnswered", hospitals_node(ctx.me), claim["claim_id"],
                     admission_answered(claim, verdict))]


# -- charges and settlement ------------------------------------------------------------------

def _close_rejected(ctx: RegionContext, claim, rejection: Rejection,
                    answer: Outgoing) -> list[Outgoing]:
    """The claim cannot be settled: tell the hospital, and the insuring region too."""
    error = wire.error_out(rejection, ctx.node_id)
    tables.reject_treated(ctx.conn, claim, error)
    if claim["insuring_region"] == ctx.me:
        insuring.reject(ctx, claim["claim_id"], error)
        return [answer]
    return [answer, Outgoing("ClaimRejected", HUB, claim["claim_id"],
                             claim_rejected(ctx, claim, error))]


def upload_charges(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """Class every charge line with our catalog; an unknown code stops the claim."""
    claim = _treated(ctx, msg, TreatedState.ADMITTED)
    lines = msg.body["items"]
    results = []
    for i, line in enumerate(lines):
        entry = ctx.config.catalog.get(line["catalog_code"])
        if entry is None:
            rejection = Rejection(
                ErrorCode.CATALOG_CODE_UNKNOWN,
                f"item {line['line_no']} code {line['catalog_code']!r} is not in the catalog "
                f"of treating region {ctx.me}: fix the mapping (3301) before settling",
                f"items[{i}].{wire.national('catalog_code')}", ctx.node_id)
            answer = Outgoing("ChargesAnswered", hospitals_node(ctx.me), claim["claim_id"],
                              charges_answered(claim, [],
                                               wire.error_out(rejection, ctx.node_id)))
            return _close_rejected(ctx, claim, rejection, answer)
        results.append(classed(line["line_no"], line["catalog_code"], line["amount"], entry))
    mapping = struck_mapping(ctx, claim["claim_id"], (line["catalog_code"] for line in lines),
                             msg.sim_time.date())
    if mapping:
        catalog = catalog_for(ctx, mapping)
        results = [classed(line["line_no"], line["catalog_code"], line["amount"],
                           catalog.get(line["catalog_code"])) for line in lines]
    tables.record_charges(ctx.conn, claim,
                          [[line["catalog_code"], line["amount"]] for line in lines], mapping)
    return [Outgoing("ChargesAnswered", hospitals_node(ctx.me), claim["claim_id"],
                     charges_answered(claim, results, None))]


def _tier(ctx: RegionContext, claim) -> TierChoice:
    filing = FilingType(claim["filing_type"]) if claim["filing_type"] else None
    return choose_tier(insuring_region=claim["insuring_region"], treating_region=ctx.me,
                       hospital_level=ctx.config.hospitals[claim["hospital"]], filing=filing)


def _settle(claim, policy: Policy, catalog: Catalog, choice: TierChoice) -> Settlement:
    return settle(items=wire.items_from_json(claim["items"]), catalog=catalog, policy=policy,
                  insurance=InsuranceType.from_insutype(claim["insurance_code"]),
                  choice=choice, cap_used=claim["cap_used"] or 0)


def settle_claim(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """Treating-region catalog, insuring-region policy (its copy as the hub distributed it)."""
    claim = _treated(ctx, msg, TreatedState.CHARGED)
    items = wire.items_from_json(claim["items"])
    insuring_region = claim["insuring_region"]

    def refuse(rejection: Rejection) -> list[Outgoing]:
        return _close_rejected(ctx, claim, rejection, settlement_answered(
            ctx, claim, None, result_code=-1, error=wire.error_out(rejection, ctx.node_id)))

    total = sum(item.amount for item in items)
    if msg.body["total"] != total:
        return refuse(Rejection(ErrorCode.INVALID_AMOUNT,
                                f"{wire.national('total')} {format_fen(msg.body['total'])} "
                                f"differs from the uploaded items' total {format_fen(total)}",
                                wire.national("total"), ctx.node_id))
    policy = cached_policy(ctx, insuring_region)
    if policy is None:
        return refuse(Rejection(ErrorCode.POLICY_MISSING,
                                f"region {ctx.me} holds no policy of insuring region "
                                f"{insuring_region}", wire.national("insuring_region"),
                                ctx.node_id))
    choice = _tier(ctx, claim)
    catalog = catalog_for(ctx, claim["mapping"])
    result = _settle(claim, policy_copy(ctx, claim, policy, choice.tier, msg.sim_time.date()),
                     catalog, choice)
    if result.error is not None:
        return refuse(result.error.at(ctx.node_id))
    claim_id = claim["claim_id"]
    discharged_at = msg.body["discharged_at"]
    settled = tables.record_treated_settlement(
        ctx.conn, claim, settlement_id=f"S{ctx.me}-{claim_id}",
        settlement=settlement_json(result), settled_on=discharged_at.date(),
        discharged_at=discharged_at)
    return _send_settlement(ctx, settled, result, catalog)


def _send_settlement(ctx: RegionContext, claim, result: Settlement, catalog: Catalog,
                     cancel: dict | None = None) -> list[Outgoing]:
    """Send the settlement ``claim`` now holds to the insuring region (after cancelling the
    one it replaces, ``cancel``); our own insured's are recorded here at once."""
    claim_id = claim["claim_id"]
    settled = claim_settled(ctx, claim, result, catalog)
    if claim["insuring_region"] == ctx.me:   # our own insured: the insuring role records it
        if cancel is not None:
            insuring.cancel(ctx, claim_id, cancel)
        confirmed, recorded = insuring.record_settlement(ctx, claim_id, settled)
        return (take_confirmation(ctx, claim, confirmed)
                + insuring.audit_settlement(ctx, recorded, settled))
    out = [] if cancel is None else [Outgoing("CancelSettlement", HUB, claim_id, cancel)]
    return out + [Outgoing("ClaimSettled", HUB, claim_id, settled)]


def settlement_confirmed(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """The insuring region recorded the settlement, through the hub."""
    return take_confirmation(ctx, _treated(ctx, msg, TreatedState.SETTLED,
                                           TreatedState.RESETTLING), msg.body)


def take_confirmation(ctx: RegionContext, claim, confirmed: dict) -> list[Outgoing]:
    """Keep whether the insuring region agreed, and answer the hospital; or, when it found
    that we settled with the wrong parameters and the run repairs, reverse and settle again
    (the hospital hears of the settlement that stands)."""
    if confirmed["settlement_id"] != claim["settlement_id"]:
        raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                            f"confirmation of settlement {confirmed['settlement_id']} for claim "
                            f"{claim['claim_id']}, which holds {claim['settlement_id']}",
                            wire.national("settlement_id"))
    cause = confirmed["cause"]
    if (not confirmed["agreed"] and cause is not None and cause["code"] in REPAIRABLE
            and ctx.faults.repair and claim["state"] == TreatedState.SETTLED):
        again = settle_again(ctx, claim, cause)
        if again is not None:
            return again
    tables.take_confirmation(ctx.conn, claim, agreed=confirmed["agreed"],
                             cause=confirmed["cause"])
    if claim["state"] == TreatedState.RESETTLING:
        log_event(ctx, "repaired" if confirmed["agreed"] else "repair failed",
                  claim["claim_id"], claim["settled_on"],
                  f"settled again as {claim['settlement_id']} (reversed "
                  f"{claim['reversed_settlement_id']}); the insuring region "
                  f"{'agrees' if confirmed['agreed'] else 'still disagrees'}",
                  code=None if cause is None else cause["code"])
    return [settlement_answered(ctx, claim, claim["settlement"], result_code=0, error=None)]


def settle_again(ctx: RegionContext, claim, cause: dict) -> list[Outgoing] | None:
    """Reverse the settlement the insuring region disagreed with and settle the claim again
    with the policy copy as the hub distributed it and our published catalog (the wrong
    copy refreshed, the wrong mapping corrected); None if it cannot be settled again."""
    policy = cached_policy(ctx, claim["insuring_region"])
    if policy is None:
        return None
    result = _settle(claim, policy, ctx.config.catalog, _tier(ctx, claim))
    if result.error is not None:
        return None
    claim_id = claim["claim_id"]
    reversed_id = claim["settlement_id"]
    settlement_id = f"S{ctx.me}-{claim_id}-R1"
    resettled = tables.resettle_treated(ctx.conn, claim, cause=cause,
                                        settlement_id=settlement_id,
                                        settlement=settlement_json(result))
    log_event(ctx, "reversed", claim_id, claim["settled_on"],
              f"{reversed_id} reversed ({cause['code']}); settled again as {settlement_id}: "
              f"fund pay {format_fen(claim['settlement']['fund_pay'])} -> "
              f"{format_fen(result.fund_pay)}", code=cause["code"])
    cancel = {"settlement_id": reversed_id, "visit_id": claim["visit_id"],
              "admission_no": claim_id}
    return _send_settlement(ctx, resettled, result, ctx.config.catalog, cancel)


# -- refusal and appeal ----------------------------------------------------------------------

def claim_refused(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """An insuring region refused part of a claim of our hospital: keep it, pass it on."""
    body = msg.body
    claim = _treated(ctx, msg)
    tables.record_refusal(ctx.conn, body["settlement_id"], claim_id=claim["claim_id"],
                          role=Role.TREATING, hospital=claim["hospital"], rule=body["rule"],
                          amount=body["refused_amount"], refused_on=msg.sim_time.date())
    return [Outgoing(msg.kind, hospitals_node(ctx.me), claim["claim_id"], body)]


def appeal_filed(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """Our hospital appeals a refusal: ours to decide if we refused it ourselves (our own
    insured), else the insuring region's, through the hub."""
    refusal = tables.get_refusal(ctx.conn, msg.body["settlement_id"])
    if refusal is not None and refusal["role"] == Role.IN_REGION:
        return [insuring.decide_appeal(ctx, msg.body["settlement_id"], msg.sim_time.date(),
                                       hospitals_node(ctx.me), refusal)]
    return [Outgoing(msg.kind, HUB, msg.correlation_id, msg.body)]


def appeal_decided(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """The insuring region decided an appeal of our hospital: keep it, pass it on."""
    tables.decide_refusal(ctx.conn, msg.body["settlement_id"], upheld=msg.body["upheld"],
                          decided_on=msg.sim_time.date())
    return [Outgoing(msg.kind, hospitals_node(ctx.me), msg.correlation_id, msg.body)]


def reverse_transaction(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """Our hospital had no answer to a request and reversed it (2601): its patient pays the
    whole bill and claims it back at home. A claim not settled yet gets no direct
    settlement, and its insuring region hears (through the hub); a claim already at its
    end keeps it."""
    if msg.sender != hospitals_node(ctx.me):
        raise ClearsimError(ErrorCode.INVALID_INPUT,
                            f"{msg.sender} cannot reverse a claim of region {ctx.me}'s "
                            "hospitals", "sender")
    claim = tables.get_treated(ctx.conn, msg.correlation_id)
    if claim is None or claim["state"] not in tables.REVERSIBLE:
        return []
    rejection = Rejection(ErrorCode.ANSWER_TIMEOUT,
                          f"{msg.sender} had no answer to its {msg.body['original_transaction']}"
                          f" request {msg.body['original_msgid']} and reversed it: no direct "
                          "settlement, the patient claims at home", None, msg.sender)
    tables.withdraw_treated(ctx.conn, claim, wire.error_out(rejection, msg.sender))
    if claim["insuring_region"] == ctx.me:
        insuring.withdraw(ctx, claim["claim_id"], rejection)
        return []
    return [Outgoing(msg.kind, HUB, claim["claim_id"], msg.body)]


def message_rejected(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """Someone refused what we sent: a claim we treat stops there, and its hospital hears.
    Refused for its interface (no resend repaired it) before it settled, the claim is not
    settled directly: its hospital sends the patient to manual reimbursement. Only the hub
    and our own hospitals refuse for a claim we treat."""
    claim = tables.get_treated(ctx.conn, msg.correlation_id)
    if claim is not None:
        speaks_for(msg, [HUB, hospitals_node(ctx.me)], f"claim {claim['claim_id']}")
    if interface_refusal(msg.body["error"]):
        return _no_direct_settlement(ctx, msg, tell_hospital=True)
    if claim is None or claim["state"] in (*tables.ANSWERED, TreatedState.REJECTED,
                                           TreatedState.FAILED):
        return []
    tables.fail_treated(ctx.conn, claim, msg.body["error"])
    return [Outgoing("ClaimRejected", hospitals_node(ctx.me), claim["claim_id"],
                     claim_rejected(ctx, claim, msg.body["error"]))]


def hospital_gave_up(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """Our hospital could not settle a claim directly (we refused what it sent for its
    interface, and no resend repaired it): the patient claims at home."""
    if not interface_refusal(msg.body["error"]):
        return []
    return _no_direct_settlement(ctx, msg, tell_hospital=False)


# Before the insuring region records a settlement, a claim can still leave direct
# settlement for manual reimbursement without being paid twice.
_OPEN = (TreatedState.VERIFYING, TreatedState.ADMITTED, TreatedState.CHARGED,
         TreatedState.SETTLED)


def _no_direct_settlement(ctx: RegionContext, msg: Message,
                          tell_hospital: bool) -> list[Outgoing]:
    """An interface refusal nobody repaired: the claim we treat is not settled directly
    (the hub hears it, and the hospital unless it told us); for our insured treated
    elsewhere whose verdict never reached the hub, the refusal goes on to the hub."""
    error = msg.body["error"]
    claim = tables.get_treated(ctx.conn, msg.correlation_id)
    if claim is None:
        insured = tables.get_insured(ctx.conn, msg.correlation_id)
        if (insured is not None and msg.sender == HUB
                and insured["state"] in (InsuredState.ADMITTED, InsuredState.REFUSED)):
            return [Outgoing(msg.kind, HUB, msg.correlation_id, msg.body)]
        return []
    out = []
    if claim["state"] in _OPEN:
        tables.give_up_direct(ctx.conn, claim, error)
        if claim["insuring_region"] != ctx.me:
            out.append(Outgoing("ClaimRejected", HUB, claim["claim_id"],
                                claim_rejected(ctx, claim, error)))
    elif claim["state"] != TreatedState.REFUSED:
        return []     # settled and answered, or ended: nothing to fall back from
    if tell_hospital:
        out.insert(0, Outgoing("ClaimRejected", hospitals_node(ctx.me), claim["claim_id"],
                               claim_rejected(ctx, claim, error)))
    return out

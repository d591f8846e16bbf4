"""A region as **treating region**: patients in its hospitals, wherever they are insured.

It admits patients in its hospitals (asking the insuring region for its verdict), classes
their charges with its own catalog, settles with the insuring region's policy as the hub
last distributed it, and passes the answers on to its hospitals. When the patient is
insured here too, the insuring role's services are called directly instead of through
the hub.
"""

from __future__ import annotations

from collections import Counter

from clearsim import wire
from clearsim.domain.policy import FilingType, InsuranceType
from clearsim.domain.settlement import ChargeItem, Settlement, choose_tier, settle
from clearsim.errors import ClearsimError, ErrorCode, Rejection, interface_refusal
from clearsim.handling import require
from clearsim.messages import HUB, Message, Outgoing, hospitals_node
from clearsim.money import format_fen
from region_node import insuring, tables
from region_node.common import RegionContext, cached_policy, settlement_json
from region_node.tables import InsuredState, Role, TreatedState


def _treated(ctx: RegionContext, msg: Message, *states: TreatedState):
    claim_id = msg.correlation_id
    return require(tables.get_treated(ctx.conn, claim_id), *states, what=f"claim {claim_id}",
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


def claim_settled(ctx: RegionContext, claim, s: Settlement, settlement_id: str,
                  when) -> dict:
    return {
        "settlement_id": settlement_id, "visit_id": claim["visit_id"],
        "admission_no": claim["claim_id"], "person_id": claim["person_id"],
        "insurance_code": claim["insurance_code"], "insuring_region": claim["insuring_region"],
        "treating_region": ctx.me, "hospital": claim["hospital"], "settled_at": when,
        "total": s.total, "class_a": s.class_a, "class_b": s.class_b, "class_c": s.class_c,
        "b_selfpay": s.b_selfpay, "in_scope": s.in_scope, "deductible": s.deductible,
        "ratio": wire.ratio_out(s.ratio), "pooled_fund_pay": s.fund_pay,
        "fund_pay": s.fund_pay, "account_pay": 0, "personal_pay": s.personal_pay,
        "tier": s.tier, "policy_version": s.policy_version, "filing_type": claim["filing_type"],
        "item_counts": dict(Counter(code for code, _ in claim["items"])),
    }


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
    if tables.get_treated(ctx.conn, claim_id) is not None:
        raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                            f"claim {claim_id} was already admitted",
                            wire.national("admission_no"))
    visit_id = f"M{ctx.me}-{claim_id}"
    tables.admit_treated(ctx.conn, claim_id, visit_id=visit_id, person_id=body["person_id"],
                         insurance_code=body["insurance_code"],
                         insuring_region=body["insuring_region"], hospital=body["hospital"],
                         admitted_at=body["admitted_at"])
    admission = {**body, "visit_id": visit_id}
    if body["insuring_region"] == ctx.me:   # our own insured: we give the verdict ourselves
        verdict = insuring.verify_admission(ctx, claim_id, admission)
        return take_verdict(ctx, tables.get_treated(ctx.conn, claim_id), verdict)
    return [Outgoing("AdmitPatient", HUB, claim_id, admission)]


def admission_verified(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """The insuring region's verdict, through the hub."""
    return take_verdict(ctx, _treated(ctx, msg, TreatedState.VERIFYING), msg.body)


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
        share = entry.b_selfpay_share
        results.append({"line_no": line["line_no"], "catalog_code": line["catalog_code"],
                        "item_class": entry.item_class.value, "amount": line["amount"],
                        "b_selfpay_share": None if share is None else wire.ratio_out(share)})
    items = [ChargeItem(code=line["catalog_code"], amount=line["amount"]) for line in lines]
    tables.record_charges(ctx.conn, claim, wire.items_to_json(items))
    return [Outgoing("ChargesAnswered", hospitals_node(ctx.me), claim["claim_id"],
                     charges_answered(claim, results, None))]


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
    filing = FilingType(claim["filing_type"]) if claim["filing_type"] else None
    choice = choose_tier(insuring_region=insuring_region, treating_region=ctx.me,
                         hospital_level=ctx.config.hospitals[claim["hospital"]], filing=filing)
    result = settle(items=items, catalog=ctx.config.catalog, policy=policy,
                    insurance=InsuranceType.from_insutype(claim["insurance_code"]), choice=choice,
                    cap_used=claim["cap_used"] or 0)
    if result.error is not None:
        return refuse(result.error.at(ctx.node_id))
    claim_id = claim["claim_id"]
    settlement_id = f"S{ctx.me}-{claim_id}"
    discharged_at = msg.body["discharged_at"]
    tables.record_treated_settlement(ctx.conn, claim, settlement_id=settlement_id,
                                     settlement=settlement_json(result),
                                     settled_on=discharged_at.date())
    settled = claim_settled(ctx, claim, result, settlement_id, discharged_at)
    if insuring_region == ctx.me:   # our own insured: record it as insuring region at once
        confirmed = insuring.record_settlement(ctx, claim_id, settled)
        return (take_confirmation(ctx, tables.get_treated(ctx.conn, claim_id), confirmed)
                + insuring.audit_settlement(ctx, claim_id, settled))
    return [Outgoing("ClaimSettled", HUB, claim_id, settled)]


def settlement_confirmed(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """The insuring region recorded the settlement, through the hub."""
    return take_confirmation(ctx, _treated(ctx, msg, TreatedState.SETTLED), msg.body)


def take_confirmation(ctx: RegionContext, claim, confirmed: dict) -> list[Outgoing]:
    """Keep whether the insuring region agreed, and answer the hospital."""
    tables.take_confirmation(ctx.conn, claim, agreed=confirmed["agreed"],
                             cause=confirmed["cause"])
    return [settlement_answered(ctx, claim, claim["settlement"], result_code=0, error=None)]


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
                                       hospitals_node(ctx.me))]
    return [Outgoing(msg.kind, HUB, msg.correlation_id, msg.body)]


def appeal_decided(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """The insuring region decided an appeal of our hospital: keep it, pass it on."""
    tables.decide_refusal(ctx.conn, msg.body["settlement_id"], upheld=msg.body["upheld"],
                          decided_on=msg.sim_time.date())
    return [Outgoing(msg.kind, hospitals_node(ctx.me), msg.correlation_id, msg.body)]


def message_rejected(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """Someone refused what we sent: a claim we treat stops there, and its hospital hears.
    Refused for its interface (no resend repaired it) before it settled, the claim is not
    settled directly: its hospital sends the patient to manual reimbursement."""
    if interface_refusal(msg.body["error"]):
        return _no_direct_settlement(ctx, msg, tell_hospital=True)
    claim = tables.get_treated(ctx.conn, msg.correlation_id)
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

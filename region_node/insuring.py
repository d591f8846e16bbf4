"""A region as **insuring region**: the persons it insures, wherever they are treated.

It checks identity and filing at admission, records settlements of its insured made
elsewhere (recomputing each with its own current policy and, from the national catalogue
registry, the treating region's published classes, so a stale or wrong parameter copy or a
wrong mapping is caught and named), takes back a settlement the treating region cancels to
settle again, keeps the annual-cap ledger, audits what it recorded and decides appeals,
and pays manual reimbursements. The services (``verify_admission``, ``record_settlement``,
``audit_settlement``, ``decide_appeal``) are called by the handlers below for care
elsewhere, and by the treating role directly for care in the region's own hospitals.
"""

from __future__ import annotations

from datetime import date

from clearsim import wire
from clearsim.domain.audit import Admission, audit
from clearsim.domain.calendar import start_of
from clearsim.domain.catalog import Catalog, ItemClass
from clearsim.domain.policy import FilingType, InsuranceType
from clearsim.domain.settlement import ChargeItem, TierChoice, fund_share, settle
from clearsim.errors import ClearsimError, ErrorCode, Rejection
from clearsim.messages import HUB, Message, Outgoing, hospitals_node
from clearsim.money import format_fen
from clearsim.senders import speaks_for
from region_node import tables
from region_node.common import REPAIRABLE, RegionContext, identity, settlement_json
from region_node.tables import InsuredState, Role


def _raise(rejection: Rejection | None) -> None:
    if rejection is not None:
        raise ClearsimError(rejection.code, rejection.message, rejection.field)


# -- filings ---------------------------------------------------------------------------

def register_filing(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """A person of this region files for care elsewhere; the hub registers it nationally."""
    body = msg.body
    if body["insuring_region"] != ctx.me:
        raise ClearsimError(ErrorCode.INVALID_INPUT,
                            f"a filing for region {body['insuring_region']} was sent to "
                            f"{ctx.me}; file with the insuring region",
                            wire.national("insuring_region"))
    if body["treating_region"] not in ctx.config.regions:
        raise ClearsimError(ErrorCode.REGION_UNKNOWN,
                            f"treating region {body['treating_region']!r} is not connected",
                            wire.national("treating_region", msg.kind))
    try:
        FilingType(body["filing_type"])
    except ValueError:
        raise ClearsimError(ErrorCode.FILING_TYPE_UNKNOWN,
                            f"filing type {body['filing_type']!r} is not one of "
                            f"{', '.join(f.value for f in FilingType)}",
                            wire.national("filing_type")) from None
    _raise(identity(ctx, body["person_id"], body["insurance_code"]))
    tables.put_filing(ctx.conn, body, tables.FilingState.REQUESTED)
    return [Outgoing("RegisterFiling", HUB, msg.correlation_id, body)]


# -- admission ---------------------------------------------------------------------------

def verify_admission(ctx: RegionContext, claim_id: str, admission: dict) -> dict:
    """Identity, filing and policy check for one admission; the AdmissionVerified body."""
    treating = admission["treating_region"]
    day = admission["admitted_at"].date()
    person, insurance_code = admission["person_id"], admission["insurance_code"]
    policy = ctx.config.policy
    filing = None
    rejection = identity(ctx, person, insurance_code)
    if rejection is None and policy is None:
        rejection = Rejection(ErrorCode.POLICY_MISSING,
                              f"region {ctx.me} has no policy to settle with",
                              wire.national("insurance_code"), ctx.node_id)
    if rejection is None and treating != ctx.me:
        filing = tables.valid_filing(ctx.conn, person, treating, day)
        if filing is None:
            rejection = Rejection(ErrorCode.FILING_MISSING,
                                  f"person {person} has no valid filing for care in "
                                  f"region {treating} on {day.isoformat()}: no direct "
                                  "settlement, manual reimbursement at home",
                                  wire.national("filing_type"), ctx.node_id)
    if rejection is not None and rejection.code in (ErrorCode.IDENTITY_MISMATCH,
                                                    ErrorCode.PERSON_UNKNOWN):
        # card data that differs from the national record (an identity fault strikes there)
        ctx.faults.noticed(rejection.code.value, claim_id, day, rejection.message)
    used = tables.cap_used(ctx.conn, person, insurance_code, day.year)
    error = None if rejection is None else wire.error_out(rejection, ctx.node_id)
    tables.verify_insured(ctx.conn, claim_id, accepted=rejection is None,
                          visit_id=admission["visit_id"], person_id=person,
                          insurance_code=insurance_code, claim_date=day,
                          treating_region=treating, hospital=admission["hospital"],
                          error=None if rejection is None else rejection.as_dict())
    return {
        "admission_no": admission["admission_no"], "visit_id": admission["visit_id"],
        "person_id": person, "accepted": rejection is None, "insurance_code": insurance_code,
        "filing_type": filing["filing_type"] if filing else None,
        "filing_id": filing["filing_id"] if filing else None,
        "policy_version": policy.version if policy else None,
        "cap_used": used, "error": error,
    }


def admit_patient(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """The hub asks for the verdict on an admission of our insured elsewhere (none when the
    patient, whose hospital had no answer, has already been reimbursed at home)."""
    held = tables.get_insured(ctx.conn, msg.correlation_id)
    if held is not None and held["state"] == InsuredState.MANUAL:
        return []
    return [Outgoing("AdmissionVerified", HUB, msg.correlation_id,
                     verify_admission(ctx, msg.correlation_id, msg.body))]


# -- recording settlements ---------------------------------------------------------------

def _class_of(item_class: str, share) -> str:
    """A class as people read it: "class B with B self-pay share 0.1"."""
    if item_class == ItemClass.B.value and share is not None:
        return f"class B with B self-pay share {share.normalize()}"
    return f"class {item_class}"


def _in_scope(lines: list[dict], catalog: Catalog) -> tuple[int, Rejection | None]:
    """The in-scope amount of a settlement's charge lines as ``catalog`` classes them, and
    the first line the settlement classed otherwise (CATALOG_MAPPING_MISMATCH)."""
    in_scope = 0
    wrong = None
    for i, line in enumerate(lines):
        entry = catalog.get(line["catalog_code"])
        right, share = ItemClass.C.value, None        # a code it does not list: self-paid
        if entry is not None:
            right = entry.item_class.value
            if entry.item_class is ItemClass.A:
                in_scope += line["amount"]
            elif entry.item_class is ItemClass.B:
                share = wire.ratio_out(entry.b_selfpay_share)
                in_scope += line["amount"] - entry.b_selfpay_share.apply(line["amount"])
        theirs = line["b_selfpay_share"] if line["item_class"] == ItemClass.B.value else None
        if wrong is None and (line["item_class"], theirs) != (right, share):
            said = "not listed" if entry is None else _class_of(right, share)
            wrong = Rejection(
                ErrorCode.CATALOG_MAPPING_MISMATCH,
                f"item {line['line_no']} code {line['catalog_code']} was settled as "
                f"{_class_of(line['item_class'], theirs)}, but is {said} in the published "
                f"catalog of treating region {catalog.region}: fix the mapping (3301) and "
                "settle again", f"items[{i}].{wire.national('item_class')}")
    return in_scope, wrong


def recompute(ctx: RegionContext, settled: dict, used: int) -> tuple[int | None,
                                                                      Rejection | None]:
    """Our own fund share of a settlement of one of our insured, and why we disagree with
    it if we do: the classes against the treating region's published catalog (the national
    registry), the policy version against ours, the fund share against ours."""
    policy = ctx.config.policy
    insurance = InsuranceType.from_insutype(settled["insurance_code"])
    plan = policy.plan(insurance) if policy else None
    tier = plan.tiers.get(settled["tier"]) if plan else None
    if tier is None:
        return None, Rejection(ErrorCode.POLICY_MISSING,
                               f"region {ctx.me} has no tier {settled['tier']!r} for "
                               f"{insurance.value}", "tier", ctx.node_id)
    in_scope, cause = settled["in_scope"], None
    catalog = ctx.config.catalogs.get(settled["treating_region"])
    if settled.get("items") and catalog is not None:
        in_scope, cause = _in_scope(settled["items"], catalog)
    deductible, own = fund_share(in_scope, tier, plan.annual_cap - used)
    reported = settled["fund_pay"]
    differ = [f"{name} {theirs} (ours {ours})" for name, theirs, ours in (
        ("fund pay", format_fen(reported), format_fen(own)),
        ("ratio", wire.ratio_in(settled["ratio"]), tier.ratio),
        ("deductible applied", format_fen(settled["deductible"]), format_fen(deductible)))
        if theirs != ours]
    if cause is not None:
        cause = Rejection(cause.code, f"{cause.message}; fund pay {format_fen(reported)}, "
                          f"recomputed {format_fen(own)}", cause.field, ctx.node_id)
    elif settled["policy_version"] != policy.version:
        cause = Rejection(ErrorCode.POLICY_VERSION_MISMATCH,
                          f"settled with policy version {settled['policy_version']} of "
                          f"region {ctx.me}; the current version is {policy.version} (fund "
                          f"pay {format_fen(reported)}, recomputed {format_fen(own)}): "
                          "refresh the copy and settle again",
                          "policy_version", ctx.node_id)
    elif differ:
        cause = Rejection(ErrorCode.POLICY_PARAMETER_MISMATCH,
                          f"{'; '.join(differ)}, recomputed with policy version "
                          f"{policy.version} of region {ctx.me}, tier {settled['tier']} "
                          f"(deductible {format_fen(tier.deductible)}, ratio {tier.ratio}, "
                          f"annual cap {format_fen(plan.annual_cap)}): the treating region's "
                          "copy of these parameters differs; refresh it and settle again",
                          wire.national("fund_pay" if own != reported else
                                        "ratio" if differ[0].startswith("ratio")
                                        else "deductible"), ctx.node_id)
    return own, cause


def record_settlement(ctx: RegionContext, claim_id: str, settled: dict) -> tuple[dict, dict]:
    """Record a settlement of one of our insured, recomputing it with our own current
    policy and the treating region's published catalog: a treating region that settled
    with a stale or wrong policy copy, or classed an item otherwise, is caught here (the
    cause is kept, and the fault report told). Returns the SettlementConfirmed body, and
    the claim's row as now recorded (``audit_settlement`` takes it)."""
    insured = tables.get_insured(ctx.conn, claim_id)
    repair = settled.get("repair_of_case")
    recorded = insured is not None and insured["state"] in tables.RECORDED
    if insured is None or not (insured["state"] in (InsuredState.ADMITTED,
                                                    InsuredState.REVERSED)
                               or (repair and recorded)):
        raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                            f"settlement of claim {claim_id} arrived but region {ctx.me} "
                            f"verified no admission for it", wire.national("admission_no"))
    if repair and recorded:   # reversal of what we held, before recording the hub's record
        tables.add_cap_use(ctx.conn, insured["person_id"], insured["insurance_code"],
                           insured["settled_on"].year, -insured["fund_pay"])
    policy = ctx.config.policy
    year = settled["settled_at"].year
    reported = settled["fund_pay"]
    # The hospital advanced what was computed at discharge: that is what the cap used. The
    # use before it is what the recomputation starts from.
    used = tables.add_cap_use(ctx.conn, settled["person_id"], settled["insurance_code"],
                              year, reported) - reported
    own, cause = recompute(ctx, settled, used)
    day = settled["settled_at"].date()
    if cause is not None and not repair:
        ctx.faults.noticed(cause.code.value, claim_id, day, cause.message)
        if insured["disagreement"] is None:
            disagreement = {
                "code": cause.code.value, "message": cause.message,
                "settlement_id": settled["settlement_id"], "fund_pay": reported,
                "recomputed": own, "detected_on": day.isoformat()}
            tables.record_disagreement(ctx.conn, claim_id, disagreement)
            insured = {**insured, "disagreement": disagreement}
    insured = tables.record_insured_settlement(
        ctx.conn, insured, agreed=cause is None, settlement_id=settled["settlement_id"],
        total=settled["total"], fund_pay=reported, personal_pay=settled["personal_pay"],
        own_fund_pay=own, policy_version=settled["policy_version"],
        settled_on=day, item_counts=settled.get("item_counts") or {},
        error=None if cause is None else cause.as_dict())
    return {"settlement_id": settled["settlement_id"], "visit_id": settled["visit_id"],
            "admission_no": settled["admission_no"], "agreed": cause is None,
            "fund_pay": own if own is not None else 0,
            "policy_version": policy.version if policy else 0,
            "cause": None if cause is None else wire.error_out(cause, ctx.node_id)}, insured


def cancel(ctx: RegionContext, claim_id: str, body: dict) -> None:
    """The treating region cancels a settlement we recorded and disagreed with, to settle
    the claim again: it leaves our ledger and gives back what it used of the annual cap."""
    insured = tables.get_insured(ctx.conn, claim_id)
    if insured is None or insured["settlement_id"] != body["settlement_id"]:
        raise ClearsimError(ErrorCode.CLAIM_UNKNOWN,
                            f"region {ctx.me} recorded no settlement {body['settlement_id']} "
                            f"of claim {claim_id}", wire.national("settlement_id"))
    if insured["state"] != InsuredState.MISMATCH:
        raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                            f"settlement {body['settlement_id']} of claim {claim_id} is "
                            f"{insured['state']} in region {ctx.me}: only a settlement it "
                            "disagreed with is cancelled to be settled again", "state")
    tables.add_cap_use(ctx.conn, insured["person_id"], insured["insurance_code"],
                       insured["settled_on"].year, -insured["fund_pay"])
    tables.reverse_insured(ctx.conn, insured)


def cancel_settlement(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """The treating region cancels a settlement of our insured (2305), through the hub."""
    cancel(ctx, msg.correlation_id, msg.body)
    return []


def awaits_reversal(ctx: RegionContext, insured) -> bool:
    """A first settlement we disagreed with for a cause the treating region repairs: it
    will be reversed and the claim settled again (when the run repairs)."""
    error = insured["error"] or {}
    return (insured["state"] == InsuredState.MISMATCH and ctx.faults.repair
            and insured["reversed_settlement_id"] is None and error.get("code") in REPAIRABLE)


def claim_settled(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """A settlement of our insured made elsewhere, through the hub."""
    confirmed, recorded = record_settlement(ctx, msg.correlation_id, msg.body)
    return ([Outgoing("SettlementConfirmed", HUB, msg.correlation_id, confirmed)]
            + audit_settlement(ctx, recorded, msg.body))


def claim_rejected(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """The treating region stopped a claim of our insured."""
    reject(ctx, msg.correlation_id, msg.body["error"])
    return []


def reverse_transaction(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """A hospital elsewhere reversed the admission of one of our insured (2601), through
    the hub: no direct settlement; the patient claims at home."""
    withdraw(ctx, msg.correlation_id, Rejection(
        ErrorCode.ANSWER_TIMEOUT, f"the hospital reversed admission {msg.correlation_id}: "
        "no direct settlement, the patient claims at home", None, ctx.node_id))
    return []


def withdraw(ctx: RegionContext, claim_id: str, rejection: Rejection) -> None:
    """Drop the direct settlement of an admission not settled yet (nothing else held)."""
    insured = tables.get_insured(ctx.conn, claim_id)
    if insured is not None and insured["state"] == InsuredState.ADMITTED:
        tables.withdraw_insured(ctx.conn, insured, rejection.as_dict())


def reject(ctx: RegionContext, claim_id: str, error: dict) -> None:
    insured = tables.get_insured(ctx.conn, claim_id)
    if insured is not None:
        tables.reject_insured(ctx.conn, insured, error)


# -- audit, refusal and appeal -------------------------------------------------------------

def audit_settlement(ctx: RegionContext, mine, settled: dict) -> list[Outgoing]:
    """Audit a settlement just recorded (``mine``: the claim's row as ``record_settlement``
    left it); a refusal is decided ``after_working_days`` later and goes to the hospital
    (through the hub if it is elsewhere)."""
    rules = ctx.config.audit
    if not rules.active or settled.get("repair_of_case"):
        return []
    claim_id = mine["claim_id"]
    if mine["settlement_id"] != settled["settlement_id"] or awaits_reversal(ctx, mine):
        return []     # audited once the settlement that stands is recorded

    def admission(c) -> Admission:
        return Admission(c["claim_id"], c["hospital"], c["claim_date"], c["total"],
                         c["fund_pay"], c["item_counts"] or {})
    earlier = [admission(c) for c in tables.recorded_insured(
        ctx.conn, person_id=mine["person_id"], excluding=claim_id)]
    refusal = audit(admission(mine), earlier, rules)
    if refusal is None:
        return []
    refused_on = ctx.config.calendar.add_working_days(mine["settled_on"], rules.after_working_days)
    in_region = mine["treating_region"] == ctx.me
    tables.record_refusal(ctx.conn, settled["settlement_id"], claim_id=claim_id,
                          role=Role.IN_REGION if in_region else Role.INSURING,
                          hospital=mine["hospital"], rule=refusal.rule,
                          amount=refusal.amount, refused_on=refused_on)
    return [Outgoing("ClaimRefused", hospitals_node(ctx.me) if in_region else HUB, claim_id, {
        "settlement_id": settled["settlement_id"], "admission_no": claim_id,
        "refused_amount": refusal.amount, "rule": refusal.rule, "reason": refusal.reason},
        sim_time=start_of(refused_on))]


def decide_appeal(ctx: RegionContext, settlement_id: str, filed_on: date,
                  to: str, refusal=None) -> Outgoing:
    """Decide an appeal by the rules that the scenario upholds; the decision goes ``to``.
    ``refusal``: the refusal's row, when the caller has just read it."""
    if refusal is None:
        refusal = tables.get_refusal(ctx.conn, settlement_id)
    if refusal is None or refusal["role"] not in (Role.INSURING, Role.IN_REGION):
        raise ClearsimError(ErrorCode.CLAIM_UNKNOWN,
                            f"region {ctx.me} refused no settlement {settlement_id}",
                            wire.national("settlement_id"))
    upheld = refusal["rule"] in ctx.config.audit.upheld_rules
    decided_on = ctx.config.calendar.add_working_days(filed_on,
                                                      ctx.config.audit.after_working_days)
    tables.decide_refusal(ctx.conn, settlement_id, upheld=upheld, decided_on=decided_on)
    return Outgoing("AppealDecided", to, refusal["claim_id"], {
        "settlement_id": settlement_id, "admission_no": refusal["claim_id"],
        "upheld": upheld, "amount": refusal["amount"] if upheld else 0},
        sim_time=start_of(decided_on))


def appeal_filed(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """A hospital elsewhere appeals our refusal, through the hub."""
    return [decide_appeal(ctx, msg.body["settlement_id"], msg.sim_time.date(), HUB)]


# -- manual reimbursement ----------------------------------------------------------------

def reimburse_manually(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """The patient paid everything and claims at home: our catalog, our not-referred tier."""
    body = msg.body
    speaks_for(msg, [hospitals_node(body["treating_region"])],   # a hospital node, for itself
               f"hospitals of region {body['treating_region']}",
               wire.national("treating_region", msg.kind))
    person, insurance_code = body["person_id"], body["insurance_code"]
    _raise(identity(ctx, person, insurance_code))
    if ctx.config.policy is None:
        raise ClearsimError(ErrorCode.POLICY_MISSING,
                            f"region {ctx.me} has no policy to reimburse with",
                            wire.national("insurance_code"))
    year = body["settled_at"].year
    used = tables.cap_used(ctx.conn, person, insurance_code, year)
    result = settle(items=[ChargeItem(i["catalog_code"], i["amount"]) for i in body["items"]],
                    catalog=ctx.config.catalog, policy=ctx.config.policy,
                    insurance=InsuranceType.from_insutype(insurance_code),
                    choice=TierChoice("manual", "cross_region.not_referred"), cap_used=used)
    if result.error is not None:
        raise ClearsimError(result.error.code, result.error.message, result.error.field)
    tables.add_cap_use(ctx.conn, person, insurance_code, year, result.fund_pay)
    tables.reimburse_insured(ctx.conn, msg.correlation_id, person_id=person,
                             insurance_code=insurance_code,
                             treating_region=body["treating_region"],
                             hospital=body["hospital"], total=result.total,
                             fund_pay=result.fund_pay, personal_pay=result.personal_pay,
                             policy_version=result.policy_version,
                             settlement=settlement_json(result))
    return []

"""A region's handlers for the claims themselves, in its two roles at once (the business
cycles that follow, reconciliation and clearing, are in ``cycles``).

As **treating region** it admits patients in its hospitals, classes their charges with its
own catalog and settles with the insuring region's policy as the hub last distributed it.
As **insuring region** it checks identity and filing at admission, records settlements of
its insured made elsewhere (recomputing the fund share with its own current policy, so a
stale parameter copy is caught), keeps the annual-cap ledger and pays manual
reimbursements. Every handler is ``(message, context) -> messages to send``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from clearsim import wire
from clearsim.domain.audit import Admission, AuditRules, audit
from clearsim.domain.calendar import Calendar, start_of
from clearsim.domain.catalog import Catalog
from clearsim.domain.clearing import ClearingTerms
from clearsim.domain.policy import FilingType, InsuranceType, Policy
from clearsim.domain.settlement import (Settlement, TierChoice, choose_tier, fund_share,
                                        settle)
from clearsim.errors import ClearsimError, ErrorCode, Rejection
from clearsim.messages import HUB, Message, Outgoing, hospitals_node, region_node
from clearsim.money import format_fen, parse_fen
from region_node import tables


@dataclass(frozen=True)
class RegionConfig:
    region: str
    regions: tuple[str, ...]
    policy: Policy | None
    catalog: Catalog
    hospitals: Mapping[str, int]          # hospital id -> level (1/2/3), in this region
    persons: Mapping[str, str]            # psn_no -> insutype, the persons it insures
    calendar: Calendar = field(default_factory=Calendar)
    clearing: ClearingTerms = field(default_factory=ClearingTerms)
    audit: AuditRules = field(default_factory=AuditRules)


@dataclass
class RegionContext:
    conn: object
    config: RegionConfig

    @property
    def node_id(self) -> str:
        return region_node(self.config.region)

    @property
    def me(self) -> str:
        return self.config.region

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


def settlement_json(s: Settlement) -> dict:
    """A settlement's every amount, as the answer's strings (kept for reports)."""
    return {
        "status": s.status, "total": format_fen(s.total), "class_a": format_fen(s.class_a),
        "class_b": format_fen(s.class_b), "class_c": format_fen(s.class_c),
        "b_selfpay": format_fen(s.b_selfpay), "in_scope": format_fen(s.in_scope),
        "deductible": format_fen(s.deductible),
        "ratio": None if s.ratio is None else str(s.ratio),
        "fund_pay": format_fen(s.fund_pay), "personal_pay": format_fen(s.personal_pay),
        "tier": s.tier, "policy_region": s.policy_region, "policy_version": s.policy_version,
        "cap_left_before": None if s.cap_left_before is None else format_fen(s.cap_left_before),
    }


# -- start-up and policy distribution ----------------------------------------------

def on_start(ctx: RegionContext) -> list[Outgoing]:
    """Register the region's insured and publish its policy once per version."""
    for psn_no, insutype in ctx.config.persons.items():
        tables.put_person(ctx.conn, psn_no, insutype)
    policy = ctx.config.policy
    if policy is None or tables.published_version(ctx.conn, ctx.me) == policy.version:
        return []
    tables.put_published_version(ctx.conn, ctx.me, policy.version)
    return [Outgoing("PublishPolicy", HUB, ctx.me, wire.policy_out(policy))]


def policy_published(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    body = msg.body
    cached = tables.cached_policy(ctx.conn, body["admdvs"])
    if cached is None or body["policy_version"] > cached["version"]:
        policy = wire.policy_in(body)
        tables.put_cached_policy(ctx.conn, policy.region, policy.version,
                                 wire.policy_to_json(policy))
    return []


# -- filings -----------------------------------------------------------------------

def register_filing(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """A person of this region files for care elsewhere; the hub registers it nationally."""
    body = msg.body
    if body["insuplc_admdvs"] != ctx.me:
        raise ClearsimError(ErrorCode.INVALID_INPUT,
                            f"a filing for region {body['insuplc_admdvs']} was sent to "
                            f"{ctx.me}; file with the insuring region", "insuplc_admdvs")
    if body["mdtrtarea_admdvs"] not in ctx.config.regions:
        raise ClearsimError(ErrorCode.REGION_UNKNOWN,
                            f"treating region {body['mdtrtarea_admdvs']!r} is not connected",
                            "mdtrtarea_admdvs")
    try:
        FilingType(body["refl_type"])
    except ValueError:
        raise ClearsimError(ErrorCode.FILING_TYPE_UNKNOWN,
                            f"filing type {body['refl_type']!r} is not one of "
                            f"{', '.join(f.value for f in FilingType)}", "refl_type") from None
    rejection = _identity(ctx, body["psn_no"], body["insutype"])
    if rejection is not None:
        raise ClearsimError(rejection.code, rejection.message, rejection.field)
    tables.put_filing(ctx.conn, {**_filing_row(body), "state": "requested"})
    return [Outgoing("RegisterFiling", HUB, msg.correlation_id, body)]


def filing_registered(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    tables.put_filing(ctx.conn, {**_filing_row(msg.body), "state": "registered"})
    return []


def _filing_row(body: dict) -> dict:
    return {k: body[k] for k in ("filing_id", "psn_no", "insutype", "insuplc_admdvs",
                                 "mdtrtarea_admdvs", "refl_type", "begndate", "enddate")}


# -- admission ---------------------------------------------------------------------

def admit_patient(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    if msg.sender == HUB:
        return [_verified_answer(msg, ctx, HUB)]
    return _admit_as_treating(msg, ctx)


def _admit_as_treating(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    body = msg.body
    claim_id = msg.correlation_id
    if body["mdtrtarea_admvs"] != ctx.me:
        raise ClearsimError(ErrorCode.REGION_UNKNOWN,
                            f"admission for treating region {body['mdtrtarea_admvs']} sent to "
                            f"{ctx.me}", "mdtrtarea_admvs")
    if body["fixmedins_code"] not in ctx.config.hospitals:
        raise ClearsimError(ErrorCode.HOSPITAL_UNKNOWN,
                            f"hospital {body['fixmedins_code']!r} is not designated in region "
                            f"{ctx.me}", "fixmedins_code")
    if body["insuplc_admdvs"] not in ctx.config.regions:
        raise ClearsimError(ErrorCode.REGION_UNKNOWN,
                            f"insuring region {body['insuplc_admdvs']!r} is not connected to "
                            "the national platform", "insuplc_admdvs")
    if tables.get_treated(ctx.conn, claim_id) is not None:
        raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                            f"claim {claim_id} was already admitted", "ipt_no")
    mdtrt_id = f"M{ctx.me}-{claim_id}"
    tables.insert_treated(ctx.conn, claim_id=claim_id, mdtrt_id=mdtrt_id,
                          psn_no=body["psn_no"], insutype=body["insutype"],
                          insuring_region=body["insuplc_admdvs"],
                          hospital=body["fixmedins_code"], begntime=body["begntime"],
                          state="verifying")
    forward = {**body, "mdtrt_id": mdtrt_id}
    if body["insuplc_admdvs"] == ctx.me:   # in-region care: this region verifies itself
        verdict = _verified_answer(Message(msg.kind, msg.header, forward), ctx, ctx.node_id)
        return admission_verified(Message("AdmissionVerified", msg.header, verdict.body), ctx)
    return [Outgoing("AdmitPatient", HUB, claim_id, forward)]


def _identity(ctx: RegionContext, psn_no: str, insutype: str) -> Rejection | None:
    person = tables.get_person(ctx.conn, psn_no)
    if person is None:
        return Rejection(ErrorCode.PERSON_UNKNOWN,
                         f"person {psn_no!r} is not insured in region {ctx.me}", "psn_no",
                         ctx.node_id)
    if person["insutype"] != insutype:
        return Rejection(ErrorCode.IDENTITY_MISMATCH,
                         f"person {psn_no} is insured under {person['insutype']} in region "
                         f"{ctx.me}, not {insutype}", "insutype", ctx.node_id)
    return None


def _valid_filing(ctx: RegionContext, psn_no: str, treating: str, day):
    for filing in tables.filings_for(ctx.conn, psn_no, treating):
        if filing["state"] == "registered" and filing["begndate"] <= day and (
                filing["enddate"] is None or day <= filing["enddate"]):
            return filing
    return None


def _verified_answer(msg: Message, ctx: RegionContext, to: str) -> Outgoing:
    """As insuring region: identity, filing and policy check for one admission."""
    body = msg.body
    treating = body["mdtrtarea_admvs"]
    day = body["begntime"].date()
    policy = ctx.config.policy
    filing = None
    rejection = _identity(ctx, body["psn_no"], body["insutype"])
    if rejection is None and policy is None:
        rejection = Rejection(ErrorCode.POLICY_MISSING,
                              f"region {ctx.me} has no policy to settle with", "insutype",
                              ctx.node_id)
    if rejection is None and treating != ctx.me:
        filing = _valid_filing(ctx, body["psn_no"], treating, day)
        if filing is None:
            rejection = Rejection(ErrorCode.FILING_MISSING,
                                  f"person {body['psn_no']} has no valid filing for care in "
                                  f"region {treating} on {day.isoformat()}: no direct "
                                  "settlement, manual reimbursement at home", "refl_type",
                                  ctx.node_id)
    used = tables.cap_used(ctx.conn, body["psn_no"], body["insutype"], day.year)
    tables.put_insured(ctx.conn, msg.correlation_id, mdtrt_id=body["mdtrt_id"],
                       psn_no=body["psn_no"], insutype=body["insutype"], claim_date=day,
                       treating_region=treating, hospital=body["fixmedins_code"],
                       state="admitted" if rejection is None else "refused",
                       error=None if rejection is None else rejection.as_dict())
    return Outgoing("AdmissionVerified", to, msg.correlation_id, {
        "ipt_no": body["ipt_no"], "mdtrt_id": body["mdtrt_id"], "psn_no": body["psn_no"],
        "accepted": rejection is None, "insutype": body["insutype"],
        "refl_type": filing["refl_type"] if filing else None,
        "filing_id": filing["filing_id"] if filing else None,
        "policy_version": policy.version if policy else None,
        "cap_used": wire.money(used),
        "error": None if rejection is None else wire.error_out(rejection, ctx.node_id),
    })


def admission_verified(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """As treating region: the insuring region's verdict, passed on to the hospital."""
    claim = _treated(ctx, msg, "verifying")
    body = msg.body
    accepted = body["accepted"]
    tables.update_treated(ctx.conn, claim["claim_id"],
                          state="admitted" if accepted else "refused",
                          refl_type=body["refl_type"],
                          expected_policy_version=body["policy_version"],
                          cap_used=wire.fen(body["cap_used"]), error=body["error"])
    return [Outgoing("AdmissionAnswered", hospitals_node(ctx.me), claim["claim_id"], {
        "ipt_no": body["ipt_no"], "mdtrt_id": claim["mdtrt_id"], "infcode": 0,
        "direct": accepted, "refl_type": body["refl_type"], "error": body["error"],
    })]


# -- charges and settlement (treating region) --------------------------------------

def _treated(ctx: RegionContext, msg: Message, *states: str):
    claim = tables.get_treated(ctx.conn, msg.correlation_id)
    if claim is None:
        raise ClearsimError(ErrorCode.CLAIM_UNKNOWN,
                            f"region {ctx.me} treats no claim {msg.correlation_id!r}",
                            "correlation_id")
    if states and claim["state"] not in states:
        raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                            f"{msg.kind} for claim {claim['claim_id']} arrived in state "
                            f"{claim['state']!r}; expected {' or '.join(states)}", "state")
    return claim


def _close_rejected(ctx: RegionContext, claim, rejection: Rejection,
                    answer: Outgoing) -> list[Outgoing]:
    """The claim cannot be settled: tell the hospital, and the hub (or ourselves) too."""
    error = wire.error_out(rejection, ctx.node_id)
    tables.update_treated(ctx.conn, claim["claim_id"], state="rejected", error=error)
    if claim["insuring_region"] == ctx.me:
        tables.update_insured(ctx.conn, claim["claim_id"], state="rejected", error=error)
        return [answer]
    return [answer, Outgoing("ClaimRejected", HUB, claim["claim_id"], {
        "ipt_no": claim["claim_id"], "mdtrt_id": claim["mdtrt_id"], "psn_no": claim["psn_no"],
        "insuplc_admdvs": claim["insuring_region"], "mdtrtarea_admvs": ctx.me,
        "fixmedins_code": claim["hospital"], "error": error})]


def upload_charges(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    claim = _treated(ctx, msg, "admitted")
    items = wire.fee_items_in(msg.body["items"])
    results = []
    for i, (item, fee) in enumerate(zip(items, msg.body["items"])):
        entry = ctx.config.catalog.get(item.code)
        if entry is None:
            rejection = Rejection(
                ErrorCode.CATALOG_CODE_UNKNOWN,
                f"item {fee['feedetl_sn']} code {item.code!r} is not in the catalog of "
                f"treating region {ctx.me}: fix the mapping (3301) before settling",
                f"items[{i}].med_list_codg", ctx.node_id)
            answer = Outgoing("ChargesAnswered", hospitals_node(ctx.me), claim["claim_id"], {
                "ipt_no": claim["claim_id"], "mdtrt_id": claim["mdtrt_id"], "infcode": -1,
                "items": [], "error": wire.error_out(rejection, ctx.node_id)})
            return _close_rejected(ctx, claim, rejection, answer)
        share = entry.b_selfpay_share
        results.append({"feedetl_sn": fee["feedetl_sn"], "med_list_codg": item.code,
                        "chrgitm_lv": entry.item_class.value,
                        "det_item_fee_sumamt": fee["det_item_fee_sumamt"],
                        "selfpay_prop": None if share is None else wire.ratio_out(share)})
    tables.update_treated(ctx.conn, claim["claim_id"], state="charged",
                          items=wire.items_to_json(items))
    return [Outgoing("ChargesAnswered", hospitals_node(ctx.me), claim["claim_id"], {
        "ipt_no": claim["claim_id"], "mdtrt_id": claim["mdtrt_id"], "infcode": 0,
        "items": results, "error": None})]


def settle_claim(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """Treating-region catalog, insuring-region policy (its copy as the hub distributed it)."""
    claim = _treated(ctx, msg, "charged")
    items = wire.items_from_json(claim["items"])
    insuring = claim["insuring_region"]

    def refuse(rejection: Rejection) -> list[Outgoing]:
        return _close_rejected(ctx, claim, rejection, _settlement_answer(
            ctx, claim, None, infcode=-1, error=wire.error_out(rejection, ctx.node_id)))

    total = sum(item.amount for item in items)
    if wire.fen(msg.body["medfee_sumamt"]) != total:
        return refuse(Rejection(ErrorCode.INVALID_AMOUNT,
                                f"medfee_sumamt {msg.body['medfee_sumamt']} differs from the "
                                f"uploaded items' total {format_fen(total)}",
                                "medfee_sumamt", ctx.node_id))
    cached = tables.cached_policy(ctx.conn, insuring)
    if cached is None:
        return refuse(Rejection(ErrorCode.POLICY_MISSING,
                                f"region {ctx.me} holds no policy of insuring region "
                                f"{insuring}", "insuplc_admdvs", ctx.node_id))
    policy = wire.policy_from_json(cached["policy"])
    filing = FilingType(claim["refl_type"]) if claim["refl_type"] else None
    choice = choose_tier(insuring_region=insuring, treating_region=ctx.me,
                         hospital_level=ctx.config.hospitals[claim["hospital"]], filing=filing)
    result = settle(items=items, catalog=ctx.config.catalog, policy=policy,
                    insurance=InsuranceType.from_insutype(claim["insutype"]), choice=choice,
                    cap_used=claim["cap_used"] or 0)
    if result.error is not None:
        return refuse(result.error.at(ctx.node_id))
    setl_id = f"S{ctx.me}-{claim['claim_id']}"
    tables.update_treated(ctx.conn, claim["claim_id"], state="settled", setl_id=setl_id,
                          settlement=settlement_json(result),
                          setl_date=msg.body["endtime"].date())
    settled = _claim_settled_body(ctx, claim, result, setl_id, msg.body["endtime"])
    if insuring == ctx.me:   # in-region: record as insuring region too, answer at once
        confirm = _record_settlement(ctx, claim["claim_id"], settled, ctx.node_id)
        return (settlement_confirmed(Message("SettlementConfirmed", msg.header, confirm.body),
                                     ctx) + _audit(ctx, claim["claim_id"], settled))
    return [Outgoing("ClaimSettled", HUB, claim["claim_id"], settled)]


def _claim_settled_body(ctx: RegionContext, claim, s: Settlement, setl_id: str,
                        when) -> dict:
    return {
        "setl_id": setl_id, "mdtrt_id": claim["mdtrt_id"], "ipt_no": claim["claim_id"],
        "psn_no": claim["psn_no"], "insutype": claim["insutype"],
        "insuplc_admdvs": claim["insuring_region"], "mdtrtarea_admvs": ctx.me,
        "fixmedins_code": claim["hospital"], "setl_time": when,
        "medfee_sumamt": wire.money(s.total), "class_a_sumamt": wire.money(s.class_a),
        "class_b_sumamt": wire.money(s.class_b), "fulamt_ownpay_amt": wire.money(s.class_c),
        "preselfpay_amt": wire.money(s.b_selfpay), "inscp_scp_amt": wire.money(s.in_scope),
        "act_pay_dedc": wire.money(s.deductible), "pool_prop_selfpay": wire.ratio_out(s.ratio),
        "hifp_pay": wire.money(s.fund_pay), "fund_pay_sumamt": wire.money(s.fund_pay),
        "acct_pay": wire.money(0), "psn_cash_pay": wire.money(s.personal_pay),
        "tier": s.tier, "policy_version": s.policy_version, "refl_type": claim["refl_type"],
        "item_counts": dict(Counter(code for code, _ in claim["items"])),
    }


def _settlement_answer(ctx: RegionContext, claim, settlement: dict | None, *, infcode: int,
                       error: dict | None) -> Outgoing:
    def amount(key: str):
        return wire.money(0 if settlement is None else parse_fen(settlement[key]))
    return Outgoing("SettlementAnswered", hospitals_node(ctx.me), claim["claim_id"], {
        "setl_id": claim["setl_id"] if settlement else None, "mdtrt_id": claim["mdtrt_id"],
        "ipt_no": claim["claim_id"], "infcode": infcode, "medfee_sumamt": amount("total"),
        "fund_pay_sumamt": amount("fund_pay"), "psn_cash_pay": amount("personal_pay"),
        "acct_pay": wire.money(0), "error": error})


def settlement_confirmed(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """As treating region: the insuring region recorded the settlement; answer the hospital."""
    claim = _treated(ctx, msg, "settled")
    body = msg.body
    tables.update_treated(ctx.conn, claim["claim_id"],
                          state="confirmed" if body["agreed"] else "mismatch",
                          agreed=body["agreed"], error=body["cause"])
    claim = tables.get_treated(ctx.conn, claim["claim_id"])
    return [_settlement_answer(ctx, claim, claim["settlement"], infcode=0, error=None)]


# -- recording (insuring region) ---------------------------------------------------

def claim_settled(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    return ([_record_settlement(ctx, msg.correlation_id, msg.body, HUB)]
            + _audit(ctx, msg.correlation_id, msg.body))


def _record_settlement(ctx: RegionContext, claim_id: str, body: dict, to: str) -> Outgoing:
    """Record a settlement of one of our insured, recomputing the fund share with our own
    current policy: a treating region that used a stale or wrong copy is caught here."""
    insured = tables.get_insured(ctx.conn, claim_id)
    repair = body.get("repair_of_case")
    recorded = insured is not None and insured["state"] in ("settled", "mismatch")
    if insured is None or not (insured["state"] == "admitted" or (repair and recorded)):
        raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                            f"settlement of claim {claim_id} arrived but region {ctx.me} "
                            f"verified no admission for it", "ipt_no")
    if repair and recorded:   # reversal of what we held, before recording the hub's record
        tables.add_cap_use(ctx.conn, insured["psn_no"], insured["insutype"],
                           insured["setl_date"].year, -insured["fund_pay"])
    policy = ctx.config.policy
    insurance = InsuranceType.from_insutype(body["insutype"])
    year = body["setl_time"].year
    used = tables.cap_used(ctx.conn, body["psn_no"], body["insutype"], year)
    reported = wire.fen(body["fund_pay_sumamt"])
    cause = None
    own = None
    plan = policy.plan(insurance) if policy else None
    tier = plan.tiers.get(body["tier"]) if plan else None
    if tier is None:
        cause = Rejection(ErrorCode.POLICY_MISSING,
                          f"region {ctx.me} has no tier {body['tier']!r} for {insurance.value}",
                          "tier", ctx.node_id)
    else:
        _, own = fund_share(wire.fen(body["inscp_scp_amt"]), tier, plan.annual_cap - used)
        if body["policy_version"] != policy.version:
            cause = Rejection(ErrorCode.POLICY_STALE,
                              f"settled with policy version {body['policy_version']} of region "
                              f"{ctx.me}; the current version is {policy.version}",
                              "policy_version", ctx.node_id)
        elif own != reported:
            cause = Rejection(ErrorCode.SETTLEMENT_MISMATCH,
                              f"fund pay {format_fen(reported)} differs from "
                              f"{format_fen(own)} recomputed by the insuring region",
                              "fund_pay_sumamt", ctx.node_id)
    # The hospital advanced what was computed at discharge: that is what the cap used.
    tables.add_cap_use(ctx.conn, body["psn_no"], body["insutype"], year, reported)
    tables.put_insured(ctx.conn, claim_id, state="settled" if cause is None else "mismatch",
                       setl_id=body["setl_id"], total=wire.fen(body["medfee_sumamt"]),
                       fund_pay=reported, personal_pay=wire.fen(body["psn_cash_pay"]),
                       own_fund_pay=own, policy_version=body["policy_version"],
                       setl_date=body["setl_time"].date(),
                       item_counts=body.get("item_counts") or {},
                       error=None if cause is None else cause.as_dict())
    return Outgoing("SettlementConfirmed", to, claim_id, {
        "setl_id": body["setl_id"], "mdtrt_id": body["mdtrt_id"], "ipt_no": body["ipt_no"],
        "agreed": cause is None, "fund_pay_sumamt": wire.money(own if own is not None else 0),
        "policy_version": policy.version if policy else 0,
        "cause": None if cause is None else wire.error_out(cause, ctx.node_id)})


# -- audit, refusal and appeal ---------------------------------------------------------

def _audit(ctx: RegionContext, claim_id: str, body: dict) -> list[Outgoing]:
    """As insuring region: audit a settlement just recorded; a refusal is decided
    ``after_working_days`` later and goes to the hospital (through the hub if elsewhere)."""
    rules = ctx.config.audit
    if not rules.active or body.get("repair_of_case"):
        return []
    mine = tables.get_insured(ctx.conn, claim_id)

    def admission(c) -> Admission:
        return Admission(c["claim_id"], c["hospital"], c["claim_date"], c["total"],
                         c["fund_pay"], c["item_counts"] or {})
    earlier = [admission(c) for c in tables.settled_insured(ctx.conn)
               if c["psn_no"] == mine["psn_no"] and c["claim_id"] != claim_id]
    refusal = audit(admission(mine), earlier, rules)
    if refusal is None:
        return []
    refused_on = ctx.config.calendar.add_working_days(mine["setl_date"], rules.after_working_days)
    in_region = mine["treating_region"] == ctx.me
    tables.put_refusal(ctx.conn, body["setl_id"], claim_id=claim_id,
                       role="in_region" if in_region else "insuring", hospital=mine["hospital"],
                       rule=refusal.rule, amount=refusal.amount, refused_on=refused_on)
    return [Outgoing("ClaimRefused", hospitals_node(ctx.me) if in_region else HUB, claim_id, {
        "setl_id": body["setl_id"], "ipt_no": claim_id,
        "refused_amount": wire.money(refusal.amount), "rule": refusal.rule,
        "reason": refusal.reason}, sim_time=start_of(refused_on))]


def claim_refused(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """As treating region: an insuring region refused part of a claim of our hospital."""
    body = msg.body
    claim = _treated(ctx, msg)
    tables.put_refusal(ctx.conn, body["setl_id"], claim_id=claim["claim_id"], role="treating",
                       hospital=claim["hospital"], rule=body["rule"],
                       amount=wire.fen(body["refused_amount"]), refused_on=msg.sim_time.date())
    return [Outgoing(msg.kind, hospitals_node(ctx.me), claim["claim_id"], body)]


def _decide(ctx: RegionContext, msg: Message, to: str) -> Outgoing:
    """As insuring region: decide an appeal by the rules that the scenario upholds."""
    refusal = tables.get_refusal(ctx.conn, msg.body["setl_id"])
    if refusal is None or refusal["role"] not in ("insuring", "in_region"):
        raise ClearsimError(ErrorCode.CLAIM_UNKNOWN,
                            f"region {ctx.me} refused no settlement {msg.body['setl_id']}",
                            "setl_id")
    upheld = refusal["rule"] in ctx.config.audit.upheld_rules
    decided_on = ctx.config.calendar.add_working_days(msg.sim_time.date(),
                                                      ctx.config.audit.after_working_days)
    tables.put_refusal(ctx.conn, refusal["setl_id"], upheld=upheld, decided_on=decided_on)
    return Outgoing("AppealDecided", to, refusal["claim_id"], {
        "setl_id": refusal["setl_id"], "ipt_no": refusal["claim_id"], "upheld": upheld,
        "amount": wire.money(refusal["amount"] if upheld else 0)},
        sim_time=start_of(decided_on))


def appeal_filed(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    if msg.sender == HUB:
        return [_decide(ctx, msg, HUB)]
    refusal = tables.get_refusal(ctx.conn, msg.body["setl_id"])
    if refusal is not None and refusal["role"] == "in_region":
        return [_decide(ctx, msg, hospitals_node(ctx.me))]
    return [Outgoing(msg.kind, HUB, msg.correlation_id, msg.body)]


def appeal_decided(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """As treating region: pass the decision to the hospital."""
    tables.put_refusal(ctx.conn, msg.body["setl_id"], upheld=msg.body["upheld"],
                       decided_on=msg.sim_time.date())
    return [Outgoing(msg.kind, hospitals_node(ctx.me), msg.correlation_id, msg.body)]


def claim_rejected(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    if tables.get_insured(ctx.conn, msg.correlation_id) is not None:
        tables.update_insured(ctx.conn, msg.correlation_id, state="rejected",
                              error=msg.body["error"])
    return []


def reimburse_manually(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """The patient paid everything and claims at home: our catalog, our not-referred tier."""
    body = msg.body
    rejection = _identity(ctx, body["psn_no"], body["insutype"])
    if rejection is not None:
        raise ClearsimError(rejection.code, rejection.message, rejection.field)
    if ctx.config.policy is None:
        raise ClearsimError(ErrorCode.POLICY_MISSING,
                            f"region {ctx.me} has no policy to reimburse with", "insutype")
    year = body["setl_time"].year
    used = tables.cap_used(ctx.conn, body["psn_no"], body["insutype"], year)
    result = settle(items=wire.fee_items_in(body["items"]), catalog=ctx.config.catalog,
                    policy=ctx.config.policy,
                    insurance=InsuranceType.from_insutype(body["insutype"]),
                    choice=TierChoice("manual", "cross_region.not_referred"), cap_used=used)
    if result.error is not None:
        raise ClearsimError(result.error.code, result.error.message, result.error.field)
    tables.add_cap_use(ctx.conn, body["psn_no"], body["insutype"], year, result.fund_pay)
    tables.put_insured(ctx.conn, msg.correlation_id, psn_no=body["psn_no"],
                       insutype=body["insutype"], treating_region=body["mdtrtarea_admvs"],
                       hospital=body["fixmedins_code"], state="manual", total=result.total,
                       fund_pay=result.fund_pay, personal_pay=result.personal_pay,
                       own_fund_pay=result.fund_pay, policy_version=result.policy_version,
                       settlement=settlement_json(result))
    return []


def message_rejected(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """Someone refused what we sent: a claim we treat stops there, and its hospital hears."""
    claim = tables.get_treated(ctx.conn, msg.correlation_id)
    if claim is None or claim["state"] in ("confirmed", "mismatch", "rejected", "failed"):
        return []
    tables.update_treated(ctx.conn, claim["claim_id"], state="failed", error=msg.body["error"])
    return [Outgoing("ClaimRejected", hospitals_node(ctx.me), claim["claim_id"], {
        "ipt_no": claim["claim_id"], "mdtrt_id": claim["mdtrt_id"], "psn_no": claim["psn_no"],
        "insuplc_admdvs": claim["insuring_region"], "mdtrtarea_admvs": ctx.me,
        "fixmedins_code": claim["hospital"], "error": msg.body["error"]})]


HANDLERS = {
    "PolicyPublished": policy_published,
    "RegisterFiling": register_filing,
    "FilingRegistered": filing_registered,
    "AdmitPatient": admit_patient,
    "AdmissionVerified": admission_verified,
    "UploadCharges": upload_charges,
    "SettleClaim": settle_claim,
    "ClaimSettled": claim_settled,
    "SettlementConfirmed": settlement_confirmed,
    "ClaimRejected": claim_rejected,
    "ReimburseManually": reimburse_manually,
    "MessageRejected": message_rejected,
    "ClaimRefused": claim_refused,
    "AppealFiled": appeal_filed,
    "AppealDecided": appeal_decided,
}

"""What a region's two roles share: its configuration and context, its start-up, the policy
copies the hub distributes, nationally registered filings and the identity check."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from clearsim import wire
from clearsim.domain.audit import AuditRules
from clearsim.domain.calendar import Calendar
from clearsim.domain.catalog import Catalog
from clearsim.domain.clearing import ClearingTerms
from clearsim.domain.policy import Policy
from clearsim.domain.settlement import Settlement
from clearsim.errors import ErrorCode, Rejection
from clearsim.faults import NO_FAULTS, Faults
from clearsim.handling import Context, wall_clock
from clearsim.messages import HUB, Message, Outgoing, region_node
from region_node import tables


@dataclass(frozen=True)
class RegionConfig:
    region: str
    regions: tuple[str, ...]
    policy: Policy | None
    catalog: Catalog
    hospitals: Mapping[str, int]          # hospital id -> level (1/2/3), in this region
    persons: Mapping[str, str]            # person id -> insurance code, the persons it insures
    calendar: Calendar = field(default_factory=Calendar)
    # The national catalogue registry: every region's published catalog, by region code. An
    # insuring region recomputes the classes a treating region gave its insured's charges.
    catalogs: Mapping[str, Catalog] = field(default_factory=dict)
    clearing: ClearingTerms = field(default_factory=ClearingTerms)
    audit: AuditRules = field(default_factory=AuditRules)


# The causes an insuring region's recomputation gives when a treating region settled with
# the wrong parameters: repaired by reversing the settlement and settling again.
REPAIRABLE = (ErrorCode.POLICY_VERSION_MISMATCH.value, ErrorCode.POLICY_PARAMETER_MISMATCH.value,
              ErrorCode.CATALOG_MAPPING_MISMATCH.value)


class RegionContext(Context[RegionConfig]):
    """A region's handler context; ``me`` is its region code."""

    @classmethod
    def of(cls, conn, config: RegionConfig,
           clock: Callable[[], datetime] = wall_clock,
           faults: Faults = NO_FAULTS) -> "RegionContext":
        return cls(conn, config, region_node(config.region), clock, faults)

    @property
    def me(self) -> str:
        return self.config.region


def log_event(ctx: RegionContext, what: str, claim_id: str, day, detail: str = "",
              code: str | None = None) -> None:
    """Something the fault report shows beside what was injected and noticed ("reversed",
    "repaired"), attributed by claim like a detection; nothing when the run injects
    nothing."""
    ctx.faults.log(what, claim_id, day, detail, code)


def settlement_json(s: Settlement) -> dict:
    """A settlement's every amount, in fen (the ratio as a string), for a JSON column."""
    return {
        "status": s.status, "total": s.total, "class_a": s.class_a, "class_b": s.class_b,
        "class_c": s.class_c, "b_selfpay": s.b_selfpay, "in_scope": s.in_scope,
        "deductible": s.deductible, "ratio": None if s.ratio is None else str(s.ratio),
        "fund_pay": s.fund_pay, "personal_pay": s.personal_pay, "tier": s.tier,
        "policy_region": s.policy_region, "policy_version": s.policy_version,
        "cap_left_before": s.cap_left_before,
    }


def identity(ctx: RegionContext, person_id: str, insurance_code: str) -> Rejection | None:
    """Is ``person_id`` insured here, under ``insurance_code``? (insuring role)"""
    person = tables.get_person(ctx.conn, person_id)
    if person is None:
        return Rejection(ErrorCode.PERSON_UNKNOWN,
                         f"person {person_id!r} is not insured in region {ctx.me}",
                         wire.national("person_id"),
                         ctx.node_id)
    if person["insurance_code"] != insurance_code:
        return Rejection(ErrorCode.IDENTITY_MISMATCH,
                         f"person {person_id} is insured under {person['insurance_code']} in region "
                         f"{ctx.me}, not {insurance_code}", wire.national("insurance_code"),
                         ctx.node_id)
    return None


# -- start-up and policy distribution ----------------------------------------------

def on_start(ctx: RegionContext) -> list[Outgoing]:
    """Register the region's insured and publish its policy once per version."""
    tables.put_persons(ctx.conn, ctx.config.persons)
    policy = ctx.config.policy
    if policy is None or tables.published_version(ctx.conn, ctx.me) == policy.version:
        return []
    tables.put_published_version(ctx.conn, ctx.me, policy.version)
    return [Outgoing("PublishPolicy", HUB, ctx.me, wire.policy_body(policy))]


def policy_published(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """Keep the newest copy of a region's policy: a treating region settles with it."""
    policies_published([msg], ctx)
    return []


def policies_published(messages: list[Message], ctx: RegionContext) -> None:
    """The policy table's records of one batch: keep each region's newest copy, in two
    statements however many regions there are."""
    newest: dict[str, dict] = {}
    again: list[Message] = []
    for msg in messages:
        body = msg.body
        seen = newest.get(body["region"])
        if seen is None or body["policy_version"] > seen["policy_version"]:
            newest[body["region"]] = body
        elif body["policy_version"] == seen["policy_version"]:
            again.append(msg)
    held = tables.cached_versions(ctx.conn, list(newest))
    again += [m for m in messages if newest[m.body["region"]] is m.body
              and held.get(m.body["region"]) == m.body["policy_version"]]
    for msg in again:     # a record of the table delivered twice: it changes nothing
        ctx.faults.noticed("DUPLICATE", msg.correlation_id, msg.sim_time.date(),
                           f"{msg.kind} of {msg.body['region']} version "
                           f"{msg.body['policy_version']} again: absorbed")
    tables.put_cached_policies(ctx.conn, [
        {"region": region, "version": body["policy_version"], "policy": _stored(body)}
        for region, body in newest.items()
        if held.get(region) is None or body["policy_version"] > held[region]])


# body's id -> (body, its stored form): the regions of one process read the same record of
# the policy table (clearsim.node shares it) and store the same copy of it. The body is kept
# beside its id, so an id is never taken for another body's.
_STORED: dict[int, tuple[dict, dict]] = {}


def _stored(body: dict) -> dict:
    """A policy body as a region stores it (``wire.policy_json``), worked out once per body."""
    found = _STORED.get(id(body))
    if found is not None and found[0] is body:
        return found[1]
    stored = wire.policy_json(wire.policy_from_body(body))
    if len(_STORED) >= 4096:
        _STORED.clear()
    _STORED[id(body)] = (body, stored)
    return stored


def cached_policy(ctx: RegionContext, region: str) -> Policy | None:
    cached = tables.cached_policy(ctx.conn, region)
    return None if cached is None else wire.policy_from_body(cached["policy"])


def filing_registered(msg: Message, ctx: RegionContext) -> list[Outgoing]:
    """The hub registered a filing; both regions it names keep it."""
    tables.put_filing(ctx.conn, msg.body, tables.FilingState.REGISTERED)
    return []

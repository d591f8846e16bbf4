"""The national hub's handlers: route every cross-region message and keep the record.

Each handler is a plain function ``(message, context) -> messages to send``. The hub is the
node centre (it routes), the transaction centre (``hub_claims`` is the authoritative log)
and the registry of filings and of every region's current policy version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from clearsim import wire
from clearsim.errors import ClearsimError, ErrorCode
from clearsim.messages import HUB, Message, Outgoing, admdvs_of, region_node
from hub import tables


@dataclass(frozen=True)
class HubConfig:
    regions: tuple[str, ...]


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
                        updated_at=ctx.now())
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
                        policy_version=body["policy_version"], updated_at=ctx.now())
    return [Outgoing(msg.kind, region_node(claim["insuring_region"]), msg.correlation_id, body)]


def settlement_confirmed(msg: Message, ctx: HubContext) -> list[Outgoing]:
    claim = _claim(ctx, msg)
    _from_region(msg, claim["insuring_region"], "sender")
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


HANDLERS = {
    "PublishPolicy": publish_policy,
    "RegisterFiling": register_filing,
    "AdmitPatient": admit_patient,
    "AdmissionVerified": admission_verified,
    "ClaimSettled": claim_settled,
    "SettlementConfirmed": settlement_confirmed,
    "ClaimRejected": claim_rejected,
    "MessageRejected": message_rejected,
}

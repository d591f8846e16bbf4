"""The hub's own tables: policy registry, national filing registry, transaction log,
reconciliation, refusals and clearing windows; and the named changes made to them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (JSON, BigInteger, Boolean, Column, Date, DateTime, Integer, MetaData,
                        String, Table, Text, bindparam, func, insert, select, update)

from clearsim.db import (get_row, insert_new, insert_row, prebuilt, update_row, update_rows,
                         upsert)
from clearsim.domain.calendar import month_end
from clearsim.handling import Transitions

metadata = MetaData()


class ClaimState(StrEnum):
    """A cross-region claim in the hub's transaction log."""
    VERIFYING = "verifying"    # admission routed to the insuring region for its verdict
    ADMITTED = "admitted"      # verdict: direct settlement
    REFUSED = "refused"        # verdict: no direct settlement
    SETTLED = "settled"        # the treating region settled it; the insuring region has
                               # not confirmed yet (a claim in flight)
    CONFIRMED = "confirmed"    # the insuring region recomputed the same fund pay
    MISMATCH = "mismatch"      # the insuring region recorded it and recomputed otherwise
    REVERSED = "reversed"      # the treating region cancelled that settlement to settle
                               # again (a claim in flight)
    REJECTED = "rejected"      # the treating region stopped the claim
    FAILED = "failed"          # a region refused a message the hub routed for it


CLAIM = Transitions({
    None: {ClaimState.VERIFYING},
    ClaimState.VERIFYING: {ClaimState.ADMITTED, ClaimState.REFUSED, ClaimState.FAILED},
    # REFUSED from ADMITTED: the hospital reversed a request it had no answer to, or an
    # interface refusal no resend repaired ended direct settlement (also from SETTLED)
    ClaimState.ADMITTED: {ClaimState.SETTLED, ClaimState.REFUSED, ClaimState.REJECTED,
                          ClaimState.FAILED},
    ClaimState.SETTLED: {ClaimState.CONFIRMED, ClaimState.MISMATCH, ClaimState.FAILED,
                         ClaimState.REFUSED},
    # a refusal of anything routed later (a notice, a resent record) stops the claim too
    ClaimState.REFUSED: {ClaimState.FAILED},
    ClaimState.CONFIRMED: {ClaimState.FAILED},
    ClaimState.MISMATCH: {ClaimState.REVERSED, ClaimState.FAILED},
    ClaimState.REVERSED: {ClaimState.SETTLED, ClaimState.FAILED},
    ClaimState.REJECTED: {ClaimState.FAILED},
    ClaimState.FAILED: {ClaimState.FAILED},
})

IN_FLIGHT = (ClaimState.VERIFYING, ClaimState.ADMITTED, ClaimState.SETTLED,
             ClaimState.REVERSED)
# Settled and answered by the insuring region: reconciled daily, cleared monthly.
CLEARABLE = (ClaimState.CONFIRMED, ClaimState.MISMATCH)


class ReconciliationState(StrEnum):
    """One region's reconciliation of one day with the hub."""
    ASKED = "asked"            # totals sent; no answer yet
    DETAILING = "detailing"    # totals differed; details sent
    BALANCED = "balanced"      # every settlement agrees
    REPAIRING = "repairing"    # cases open that the hub repairs by resending its record
    REPAIRED = "repaired"      # every such case repaired
    ESCALATED = "escalated"    # what is left is for people


class CaseState(StrEnum):
    OPEN = "open"
    REPAIRED = "repaired"
    ESCALATED = "escalated"


class WindowState(StrEnum):
    """A monthly clearing window."""
    NOTIFIED = "notified"      # every region has its notice
    CONFIRMED = "confirmed"    # every region confirmed what it owes
    FAILED = "failed"          # a region's figure is not the hub's
    PAID = "paid"              # every region paid its net position
    DISBURSED = "disbursed"    # net receivers were paid out


policies = Table(
    "hub_policies", metadata,
    Column("region", String(6), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("policy", JSON, nullable=False),          # wire.policy_json: fen, ratio strings
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

filings = Table(
    "hub_filings", metadata,
    Column("filing_id", String(64), primary_key=True),
    Column("person_id", String(64), nullable=False, index=True),
    Column("insurance_code", String(3), nullable=False),
    Column("insuring_region", String(6), nullable=False),
    Column("treating_region", String(6), nullable=False),
    Column("filing_type", String(32), nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("valid_until", Date, nullable=True),
)

# The transaction log: one row per cross-region claim, in the hub's view.
claims = Table(
    "hub_claims", metadata,
    Column("claim_id", String(64), primary_key=True),
    Column("visit_id", String(64), nullable=True),
    Column("person_id", String(64), nullable=False),
    Column("insurance_code", String(3), nullable=False),
    Column("insuring_region", String(6), nullable=False),
    Column("treating_region", String(6), nullable=False),
    Column("hospital", String(64), nullable=False),
    Column("state", String(16), nullable=False),      # ClaimState
    Column("settlement_id", String(64), nullable=True, index=True),
    Column("total", BigInteger, nullable=True),
    Column("fund_pay", BigInteger, nullable=True),
    Column("personal_pay", BigInteger, nullable=True),
    Column("policy_version", Integer, nullable=True),
    Column("insuring_fund_pay", BigInteger, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("claim_date", Date, nullable=False),
    Column("settled_on", Date, nullable=True, index=True),   # sim day of the settlement
    Column("clearing_id", String(32), nullable=True, index=True),
    Column("record", JSON, nullable=True),            # the ClaimSettled body, for resends
    Column("settled_at", DateTime(timezone=True), nullable=True),   # when the hub heard
    Column("recon_treating", Boolean, nullable=False, default=False),
    Column("recon_insuring", Boolean, nullable=False, default=False),
    Column("reconciled_on", Date, nullable=True),     # all three parties agree (sim day)
    Column("reconciled_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # the settlement the treating region cancelled (2305) before settling the claim again
    Column("reversed_settlement_id", String(64), nullable=True),
)

# Audit refusals as the insuring regions reported them, and appeal decisions.
refusals = Table(
    "hub_refusals", metadata,
    Column("settlement_id", String(64), primary_key=True),
    Column("claim_id", String(64), nullable=False),
    Column("insuring_region", String(6), nullable=False),
    Column("treating_region", String(6), nullable=False),
    Column("rule", String(32), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("refused_on", Date, nullable=False),
    Column("upheld", Boolean, nullable=True),
    Column("decided_on", Date, nullable=True),
    Column("refused_clearing", String(32), nullable=True),
    Column("upheld_clearing", String(32), nullable=True),
)

# Daily three-party reconciliation, per day and region, and the cases it opens.
reconciliations = Table(
    "hub_reconciliations", metadata,
    Column("statement_date", Date, primary_key=True),
    Column("region", String(6), primary_key=True),
    Column("state", String(16), nullable=False),      # ReconciliationState
    Column("attempts", Integer, nullable=False, default=1),
)

cases = Table(
    "hub_cases", metadata,
    Column("case_id", String(64), primary_key=True),
    Column("statement_date", Date, nullable=False),
    Column("region", String(6), nullable=False),
    Column("settlement_id", String(64), nullable=False),
    Column("claim_id", String(64), nullable=True, index=True),
    Column("cause", String(32), nullable=False),
    Column("owner", String(32), nullable=False),
    Column("repair", String(32), nullable=False),
    Column("state", String(16), nullable=False),      # CaseState
    Column("resolution", Text, nullable=True),
)

# Monthly clearing windows and each region's position in them.
clearings = Table(
    "hub_clearings", metadata,
    Column("clearing_id", String(32), primary_key=True),
    Column("month", String(6), nullable=False, unique=True),   # YYYYMM
    Column("state", String(16), nullable=False),      # WindowState
    Column("claims", Integer, nullable=False),
)

positions = Table(
    "hub_positions", metadata,
    Column("clearing_id", String(32), primary_key=True),
    Column("region", String(6), primary_key=True),
    Column("payable", BigInteger, nullable=False),
    Column("receivable", BigInteger, nullable=False),
    Column("confirmed", Boolean, nullable=False),
    Column("paid", BigInteger, nullable=True),
    Column("disbursed", BigInteger, nullable=True),
)


def _month_days(month: str) -> tuple[date, date]:
    first = date(int(month[:4]), int(month[4:]), 1)
    return first, month_end(first)


# -- policy and filing registries -----------------------------------------------------

def policy_version(conn, region: str) -> int | None:
    row = get_row(conn, policies, policies.c.region, region)
    return None if row is None else row["version"]


def put_policy(conn, region: str, version: int, policy: dict, now: datetime) -> None:
    upsert(conn, policies, {"region": region, "version": version, "policy": policy,
                            "updated_at": now})


def put_filing(conn, filing: dict) -> None:
    upsert(conn, filings, {c.name: filing.get(c.name) for c in filings.columns})


# -- the transaction log --------------------------------------------------------------

def get_claim(conn, claim_id: str):
    return get_row(conn, claims, claims.c.claim_id, claim_id)


def claim_by_settlement(conn, settlement_id: str):
    return get_row(conn, claims, claims.c.settlement_id, settlement_id)


def insert_claim(conn, **values) -> bool:
    """A claim the hub has just routed for admission (state ``verifying``); False, and
    nothing written, when the hub already holds a claim of that id."""
    return insert_new(conn, claims, values)


def _move(conn, claim, end: ClaimState, now: datetime, **values) -> None:
    """Move ``claim`` (a row) to ``end``, if its transitions allow it, with ``values``."""
    CLAIM.check(ClaimState(claim["state"]), end, what=f"claim {claim['claim_id']}")
    update_row(conn, claims, claims.c.claim_id, claim["claim_id"],
               {"state": end, "updated_at": now, **values})


def record_verdict(conn, claim, accepted: bool, policy_version: int | None,
                   error_code: str | None, now: datetime) -> None:
    _move(conn, claim, ClaimState.ADMITTED if accepted else ClaimState.REFUSED, now,
          policy_version=policy_version, error_code=error_code)


def record_settlement(conn, claim, *, settlement_id: str, total: int, fund_pay: int,
                      personal_pay: int, policy_version: int, settled_on: date, record: dict,
                      now: datetime) -> None:
    _move(conn, claim, ClaimState.SETTLED, now, settlement_id=settlement_id, total=total,
          fund_pay=fund_pay, personal_pay=personal_pay, policy_version=policy_version,
          settled_on=settled_on, record=record, settled_at=now)


def record_confirmation(conn, claim, agreed: bool, insuring_fund_pay: int,
                        error_code: str | None, now: datetime) -> None:
    _move(conn, claim, ClaimState.CONFIRMED if agreed else ClaimState.MISMATCH, now,
          insuring_fund_pay=insuring_fund_pay, error_code=error_code)


def record_reversal(conn, claim, now: datetime) -> None:
    """The settlement held is cancelled; the claim waits for its new settlement."""
    _move(conn, claim, ClaimState.REVERSED, now,
          reversed_settlement_id=claim["settlement_id"])


def record_withdrawal(conn, claim, error_code: str, now: datetime) -> None:
    """The hospital reversed the claim's admission: no direct settlement."""
    _move(conn, claim, ClaimState.REFUSED, now, error_code=error_code)


def withdrawn(claim) -> bool:
    """Was the claim's admission reversed (its hospital went to manual reimbursement)?"""
    return claim["state"] == ClaimState.REFUSED and claim["error_code"] == "ANSWER_TIMEOUT"


def record_rejection(conn, claim, error_code: str, now: datetime) -> None:
    _move(conn, claim, ClaimState.REJECTED, now, error_code=error_code)


def record_failure(conn, claim, error_code: str, now: datetime) -> None:
    _move(conn, claim, ClaimState.FAILED, now, error_code=error_code)


def record_no_direct(conn, claim, error_code: str, now: datetime) -> None:
    """No direct settlement after all (an interface refusal no resend repaired)."""
    _move(conn, claim, ClaimState.REFUSED, now, error_code=error_code)


def agreement(claim_id: str, *, treating: bool, insuring: bool,
              reconciled_on: date | None = None, reconciled_at: datetime | None = None
              ) -> dict:
    """Which regions agree with the hub on a claim; with both, the day all three agree
    (``record_agreements`` writes it)."""
    values = {"_key": claim_id, "recon_treating": treating, "recon_insuring": insuring}
    if reconciled_on is not None:
        values.update(reconciled_on=reconciled_on, reconciled_at=reconciled_at)
    return values


def record_agreements(conn, agreements: Iterable[dict]) -> None:
    """Write ``agreement``s: one executemany per shape (with or without the day all three
    agreed), rather than a statement per claim."""
    statement = prebuilt((claims, "agreement"), lambda: update(claims).where(
        claims.c.claim_id == bindparam("_key")))
    shapes: dict[int, list[dict]] = {}
    for values in agreements:
        shapes.setdefault(len(values), []).append(values)
    for _, batch in sorted(shapes.items()):
        conn.execute(statement, batch)


def day_claims(conn, day: date, region: str):
    """The hub's settled cross-region claims of a day in which a region took part."""
    statement = prebuilt((claims, "of_day"), lambda: select(claims).where(
        claims.c.settled_on == bindparam("day"), claims.c.state.in_(CLEARABLE),
        (claims.c.treating_region == bindparam("region"))
        | (claims.c.insuring_region == bindparam("region"))))
    return conn.execute(statement, {"day": day, "region": region}).mappings().all()


# -- daily reconciliation -------------------------------------------------------------

def get_reconciliation(conn, day: date, region: str):
    statement = prebuilt((reconciliations, "get"), lambda: select(reconciliations).where(
        reconciliations.c.statement_date == bindparam("day"),
        reconciliations.c.region == bindparam("region")))
    return conn.execute(statement, {"day": day, "region": region}).mappings().first()


def ask_region(conn, day: date, region: str, attempt: int) -> None:
    upsert(conn, reconciliations, {"statement_date": day, "region": region,
                                   "state": ReconciliationState.ASKED, "attempts": attempt})


def escalate_reconciliation(conn, day: date, region: str) -> None:
    """The region's silence is left to people (its attempts stay as they were)."""
    upsert(conn, reconciliations, {"statement_date": day, "region": region,
                                   "state": ReconciliationState.ESCALATED})


def set_reconciliation_state(conn, day: date, region: str, state: ReconciliationState) -> None:
    statement = prebuilt((reconciliations, "set_state"), lambda: update(reconciliations).where(
        reconciliations.c.statement_date == bindparam("_day"),
        reconciliations.c.region == bindparam("_region")))
    conn.execute(statement, {"_day": day, "_region": region, "state": state})


def insert_case(conn, **values) -> None:
    insert_row(conn, cases, values)


def open_case_for(conn, claim_id: str):
    statement = prebuilt((cases, "open_for"), lambda: select(cases).where(
        cases.c.claim_id == bindparam("claim_id"), cases.c.state == CaseState.OPEN))
    return conn.execute(statement, {"claim_id": claim_id}).mappings().first()


def open_cases(conn, day: date, region: str) -> int:
    statement = prebuilt((cases, "open_count"), lambda: select(func.count()).select_from(
        cases).where(cases.c.statement_date == bindparam("day"),
                     cases.c.region == bindparam("region"), cases.c.state == CaseState.OPEN))
    return conn.execute(statement, {"day": day, "region": region}).scalar()


def repair_case(conn, case_id: str, resolution: str) -> None:
    update_row(conn, cases, cases.c.case_id, case_id,
               {"state": CaseState.REPAIRED, "resolution": resolution})


# -- audit refusals and appeals -------------------------------------------------------

def get_refusal(conn, settlement_id: str):
    return get_row(conn, refusals, refusals.c.settlement_id, settlement_id)


def put_refusal(conn, *, settlement_id: str, claim_id: str, insuring_region: str,
                treating_region: str, rule: str, amount: int, refused_on: date) -> None:
    """A refusal as the insuring region reported it (a second report replaces the first;
    an appeal decision and clearing marks already recorded stay)."""
    upsert(conn, refusals, {"settlement_id": settlement_id, "claim_id": claim_id,
                            "insuring_region": insuring_region,
                            "treating_region": treating_region, "rule": rule,
                            "amount": amount, "refused_on": refused_on})


def record_appeal(conn, settlement_id: str, upheld: bool, decided_on: date) -> None:
    update_row(conn, refusals, refusals.c.settlement_id, settlement_id,
               {"upheld": upheld, "decided_on": decided_on})


def refusals_to_deduct(conn, month: str):
    """Refusals of ``month`` not yet deducted in a clearing window."""
    first, last = _month_days(month)
    return conn.execute(select(refusals).where(
        refusals.c.refused_clearing.is_(None),
        refusals.c.refused_on.between(first, last)).order_by(refusals.c.settlement_id)
    ).mappings().all()


def appeals_to_return(conn, month: str):
    """Appeals upheld in ``month`` whose amount no clearing window has returned yet."""
    first, last = _month_days(month)
    return conn.execute(select(refusals).where(
        refusals.c.upheld.is_(True), refusals.c.upheld_clearing.is_(None),
        refusals.c.decided_on.between(first, last)).order_by(refusals.c.settlement_id)
    ).mappings().all()


def mark_deducted(conn, settlement_ids: Iterable[str], clearing_id: str) -> None:
    update_rows(conn, refusals, refusals.c.settlement_id, settlement_ids,
                {"refused_clearing": clearing_id})


def mark_returned(conn, settlement_ids: Iterable[str], clearing_id: str) -> None:
    update_rows(conn, refusals, refusals.c.settlement_id, settlement_ids,
                {"upheld_clearing": clearing_id})


# -- monthly clearing -----------------------------------------------------------------

def get_clearing(conn, month: str):
    return get_row(conn, clearings, clearings.c.month, month)


def in_flight_claims(conn, admitted_by: date) -> list[str]:
    """Claims admitted by ``admitted_by``, in no window yet, still in flight (sorted)."""
    return sorted(conn.execute(select(claims.c.claim_id).where(
        claims.c.clearing_id.is_(None), claims.c.state.in_(IN_FLIGHT),
        claims.c.claim_date <= admitted_by)).scalars())


def claims_to_clear(conn, month: str):
    """Claims settled in ``month``, answered by the insuring region and not yet in any
    clearing window (so none is ever counted in two)."""
    first, last = _month_days(month)
    return conn.execute(select(claims.c.claim_id, claims.c.insuring_region,
                               claims.c.treating_region, claims.c.fund_pay).where(
        claims.c.clearing_id.is_(None), claims.c.state.in_(CLEARABLE),
        claims.c.settled_on.between(first, last))).mappings().all()


def insert_window(conn, clearing_id: str, month: str, claim_ids: list[str], table) -> None:
    insert_row(conn, clearings, {"clearing_id": clearing_id, "month": month,
                                 "state": WindowState.NOTIFIED, "claims": len(claim_ids)})
    if table:
        conn.execute(insert(positions), [
            {"clearing_id": clearing_id, "region": position.region,
             "payable": position.payable, "receivable": position.receivable,
             "confirmed": False} for position in table.values()])
    update_rows(conn, claims, claims.c.claim_id, claim_ids, {"clearing_id": clearing_id})


def set_window_state(conn, clearing_id: str, state: WindowState) -> None:
    update_row(conn, clearings, clearings.c.clearing_id, clearing_id, {"state": state})


def get_position(conn, clearing_id: str, region: str):
    statement = prebuilt((positions, "get"), lambda: select(positions).where(
        positions.c.clearing_id == bindparam("clearing_id"),
        positions.c.region == bindparam("region")))
    return conn.execute(statement, {"clearing_id": clearing_id, "region": region}
                        ).mappings().first()


def get_positions(conn, clearing_id: str):
    return conn.execute(select(positions).where(positions.c.clearing_id == clearing_id)
                        .order_by(positions.c.region)).mappings().all()


def _set_position(conn, clearing_id: str, region: str, **values) -> None:
    statement = prebuilt((positions, "set"), lambda: update(positions).where(
        positions.c.clearing_id == bindparam("_clearing_id"),
        positions.c.region == bindparam("_region")))
    conn.execute(statement, {"_clearing_id": clearing_id, "_region": region, **values})


def confirm_position(conn, clearing_id: str, region: str) -> None:
    _set_position(conn, clearing_id, region, confirmed=True)


def record_payment(conn, clearing_id: str, region: str, paid: int) -> None:
    _set_position(conn, clearing_id, region, paid=paid)


def record_disbursement(conn, clearing_id: str, region: str, disbursed: int) -> None:
    _set_position(conn, clearing_id, region, disbursed=disbursed)


def _positions_left(conn, clearing_id: str, *open_conditions) -> int:
    return conn.execute(select(func.count()).select_from(positions).where(
        positions.c.clearing_id == clearing_id, *open_conditions)).scalar()


def all_confirmed(conn, clearing_id: str) -> bool:
    return not _positions_left(conn, clearing_id, positions.c.confirmed.is_(False))


def all_confirmed_and_paid(conn, clearing_id: str) -> bool:
    return not _positions_left(conn, clearing_id,
                               positions.c.confirmed.is_(False) | positions.c.paid.is_(None))

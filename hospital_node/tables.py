"""The hospitals' HIS ledger: admissions, charges, settlements and what the fund owes them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (JSON, BigInteger, Boolean, Column, Date, DateTime, Integer, MetaData,
                        String, Table, bindparam, func, select, update)

from clearsim.db import get_row, insert_new, prebuilt, update_row, update_rows, upsert
from clearsim.domain.reconciliation import Totals
from clearsim.handling import Transitions

metadata = MetaData()


class ClaimState(StrEnum):
    """A claim as its hospital holds it, from admission to the discharge settlement."""
    ADMITTING = "admitting"    # admission sent to the platform, no answer yet
    CHARGING = "charging"      # admitted for direct settlement; charges uploaded
    SETTLING = "settling"      # charges accepted; discharge settlement asked for
    SETTLED = "settled"        # settled at discharge: the hospital advanced the fund share
    MANUAL = "manual"          # no direct settlement: the patient paid all, claims at home
    REJECTED = "rejected"      # the platform refused the claim (its answer, or our message)
    FAILED = "failed"          # a party further on refused the claim (ClaimRejected)


CLAIM = Transitions({
    None: {ClaimState.ADMITTING},
    ClaimState.ADMITTING: {ClaimState.CHARGING, ClaimState.MANUAL, ClaimState.REJECTED,
                           ClaimState.FAILED},
    # MANUAL from CHARGING: the charges went unanswered and the hospital fell back, or an
    # interface refusal no resend repaired (DOMAIN.md §6); from SETTLING: the latter
    ClaimState.CHARGING: {ClaimState.SETTLING, ClaimState.MANUAL, ClaimState.REJECTED,
                          ClaimState.FAILED},
    ClaimState.SETTLING: {ClaimState.SETTLED, ClaimState.MANUAL, ClaimState.REJECTED,
                          ClaimState.FAILED},
})


class ReconciliationState(StrEnum):
    """A hospital's reconciliation of one day with its platform."""
    ASKED = "asked"              # totals sent (3201)
    DETAILING = "detailing"      # totals differed: details sent (3202)
    BALANCED = "balanced"        # the platform agrees
    DIFFERENCES = "differences"  # some rows differ; the platform sends its record again


FINAL_RECONCILIATION = (ReconciliationState.BALANCED, ReconciliationState.DIFFERENCES)


claims = Table(
    "hospital_claims", metadata,
    Column("claim_id", String(64), primary_key=True),
    Column("hospital", String(64), nullable=False, index=True),
    Column("person_id", String(64), nullable=False),
    Column("insurance_code", String(3), nullable=False),
    Column("insuring_region", String(6), nullable=False),
    Column("admitted_at", DateTime(timezone=True), nullable=False),
    Column("items", JSON, nullable=False),               # [[catalog code, fen], ...]
    Column("total", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),         # ClaimState
    Column("visit_id", String(64), nullable=True),
    Column("settlement_id", String(64), nullable=True, index=True),
    Column("settled_on", Date, nullable=True, index=True),   # the day settled at discharge
    Column("fund_pay", BigInteger, nullable=True),       # advanced by the hospital (垫付)
    Column("personal_pay", BigInteger, nullable=True),   # paid by the patient at discharge
    Column("attempts", Integer, nullable=False, default=1),   # sends of the open request
    Column("asked_at", DateTime(timezone=True), nullable=True),   # ... first sent (wall)
    Column("fallback", String(16), nullable=True),       # retries spent: "wait" | "manual"
    Column("error", JSON, nullable=True),                # wire.error_out
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("answered_at", DateTime(timezone=True), nullable=True),
    Column("paid_on", Date, nullable=True),              # the fund's share came back (回款)
    Column("paid_at", DateTime(timezone=True), nullable=True),   # ... on the wall clock
    Column("paid_amount", BigInteger, nullable=True),
    Column("refused_amount", BigInteger, nullable=True),  # the insuring region's audit
    Column("refused_on", Date, nullable=True),
    Column("appeal_upheld", Boolean, nullable=True),
    Column("appeal_decided_on", Date, nullable=True),
    Column("deducted_on", Date, nullable=True),          # the refusal taken from a payback
    Column("returned_on", Date, nullable=True),          # an upheld appeal paid back
)


# Each hospital's daily reconciliation with its platform, and the 3202 result of each row.
reconciliations = Table(
    "hospital_reconciliations", metadata,
    Column("statement_date", Date, primary_key=True),
    Column("hospital", String(64), primary_key=True),
    Column("state", String(16), nullable=False),   # ReconciliationState
    Column("results", JSON, nullable=True),        # settlement id -> 3202 result (0/1/2/3)
)


# -- claims: reading ---------------------------------------------------------------------

def get_claim(conn, claim_id: str):
    return get_row(conn, claims, claims.c.claim_id, claim_id)


AWAITING = (ClaimState.ADMITTING, ClaimState.CHARGING, ClaimState.SETTLING)


def awaiting_answer(conn):
    """Claims whose open request (admission, charges, settlement) has no answer yet and
    whose retries are not spent, in claim order."""
    statement = prebuilt((claims, "awaiting"), lambda: select(claims).where(
        claims.c.state.in_(AWAITING), claims.c.fallback.is_(None),
        claims.c.asked_at.is_not(None)).order_by(claims.c.claim_id))
    return conn.execute(statement).mappings().all()


def by_settlement_ids(conn, settlement_ids: list[str]):
    statement = prebuilt((claims, "by_settlements"), lambda: select(claims).where(
        claims.c.settlement_id.in_(bindparam("ids", expanding=True)))
        .order_by(claims.c.claim_id))
    return conn.execute(statement, {"ids": list(settlement_ids)}).mappings().all()


def _settled_on():
    """Claims settled on the day ``:day`` (the day of the settlement, not of the admission)."""
    return claims.c.state == ClaimState.SETTLED, claims.c.settled_on == bindparam("day")


def settled_on(conn, day: date, hospital: str):
    """``hospital``'s settlements of ``day``, in claim order."""
    statement = prebuilt((claims, "settled_on"), lambda: select(claims).where(
        *_settled_on(), claims.c.hospital == bindparam("hospital"))
        .order_by(claims.c.claim_id))
    return conn.execute(statement, {"day": day, "hospital": hospital}).mappings().all()


def day_totals(conn, day: date) -> dict[str, Totals]:
    """Per hospital with settlements on ``day``: their count, total and fund share."""
    statement = prebuilt((claims, "day_totals"), lambda: select(
        claims.c.hospital, func.count(), func.sum(claims.c.total), func.sum(claims.c.fund_pay))
        .where(*_settled_on()).group_by(claims.c.hospital).order_by(claims.c.hospital))
    rows = conn.execute(statement, {"day": day}).all()
    return {hospital: Totals(count, int(total), int(fund_pay))
            for hospital, count, total, fund_pay in rows}


# -- claims: the moves of a claim, each named ---------------------------------------------

def _move(conn, claim, end: ClaimState, **values) -> None:
    CLAIM.check(claim["state"], end, what=f"claim {claim['claim_id']}")
    update_row(conn, claims, claims.c.claim_id, claim["claim_id"], {"state": end, **values})


def _update(conn, claim, **values) -> None:
    update_row(conn, claims, claims.c.claim_id, claim["claim_id"], values)


def admit(conn, claim_id: str, *, hospital: str, person_id: str, insurance_code: str,
          insuring_region: str, admitted_at: datetime, items: list, total: int,
          submitted_at: datetime) -> bool:
    """A patient arrives: the claim is opened and its admission sent to the platform.
    False, and nothing written, when the claim was already submitted."""
    CLAIM.check(None, ClaimState.ADMITTING, what=f"claim {claim_id}")
    return insert_new(conn, claims, {
        "claim_id": claim_id, "hospital": hospital, "person_id": person_id,
        "insurance_code": insurance_code, "insuring_region": insuring_region,
        "admitted_at": admitted_at, "items": items, "total": total,
        "state": ClaimState.ADMITTING, "submitted_at": submitted_at, "attempts": 1,
        "asked_at": submitted_at})


def start_charging(conn, claim, visit_id: str, asked_at: datetime | None = None) -> None:
    _move(conn, claim, ClaimState.CHARGING, visit_id=visit_id, attempts=1, asked_at=asked_at,
          fallback=None)


def start_settling(conn, claim, asked_at: datetime | None = None) -> None:
    _move(conn, claim, ClaimState.SETTLING, attempts=1, asked_at=asked_at, fallback=None)


def count_attempt(conn, claim) -> None:
    """The open request was sent once more."""
    _update(conn, claim, attempts=claim["attempts"] + 1)


def give_up(conn, claim, fallback: str) -> None:
    """The open request's retries are spent: ``fallback`` says what the hospital does
    ("wait" for the answer, or "manual" reimbursement)."""
    _update(conn, claim, fallback=fallback)


def settle(conn, claim, *, settlement_id: str, settled_on: date, fund_pay: int,
           personal_pay: int, answered_at: datetime) -> None:
    _move(conn, claim, ClaimState.SETTLED, settlement_id=settlement_id, settled_on=settled_on,
          fund_pay=fund_pay, personal_pay=personal_pay, answered_at=answered_at)


def correct_settlement(conn, claim, *, fund_pay: int, personal_pay: int) -> None:
    """The platform's record, sent again after reconciliation, replaces the hospital's."""
    _update(conn, claim, fund_pay=fund_pay, personal_pay=personal_pay)


def go_manual(conn, claim, *, visit_id: str, error: dict | None,
              answered_at: datetime) -> None:
    """No direct settlement: the patient pays the whole total and claims it at home."""
    _move(conn, claim, ClaimState.MANUAL, visit_id=visit_id, fund_pay=0,
          personal_pay=claim["total"], error=error, answered_at=answered_at)


def reject(conn, claim, error: dict, answered_at: datetime) -> None:
    _move(conn, claim, ClaimState.REJECTED, error=error, answered_at=answered_at)


def fail(conn, claim, error: dict, answered_at: datetime) -> None:
    _move(conn, claim, ClaimState.FAILED, error=error, answered_at=answered_at)


def mark_paid(conn, claim_ids: Iterable[str], day: date, paid_at: datetime) -> None:
    """The fund share of these settlements came back, each in full."""
    ids = list(claim_ids)
    if ids:
        statement = prebuilt((claims, "paid"), lambda: update(claims).where(
            claims.c.claim_id.in_(bindparam("_keys", expanding=True)))
            .values(paid_amount=claims.c.fund_pay))
        conn.execute(statement, {"_keys": ids, "paid_on": day, "paid_at": paid_at})


def mark_deducted(conn, claim_ids: Iterable[str], day: date) -> None:
    update_rows(conn, claims, claims.c.claim_id, claim_ids, {"deducted_on": day})


def mark_returned(conn, claim_ids: Iterable[str], day: date) -> None:
    update_rows(conn, claims, claims.c.claim_id, claim_ids, {"returned_on": day})


def record_refusal(conn, claim, amount: int, day: date) -> None:
    _update(conn, claim, refused_amount=amount, refused_on=day)


def record_appeal_decision(conn, claim, upheld: bool, day: date) -> None:
    _update(conn, claim, appeal_upheld=upheld, appeal_decided_on=day)


# -- reconciliations ----------------------------------------------------------------------

def put_reconciliation(conn, day: date, hospital: str, state: ReconciliationState,
                       results: dict[str, int] | None = None) -> None:
    """Where ``hospital``'s reconciliation of ``day`` stands (and its 3202 results)."""
    values = {"statement_date": day, "hospital": hospital, "state": state}
    if results is not None:
        values["results"] = results
    upsert(conn, reconciliations, values)

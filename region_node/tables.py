"""A region's own tables: its insured, its filings, cached policies, and claims in both roles.

A claim appears twice when the region plays both roles for it (care in its own hospitals of
its own insured): once in ``treated_claims`` (as treating region) and once in
``insured_claims`` (as insuring region), each with its own states.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from enum import StrEnum

from sqlalchemy import (JSON, BigInteger, Boolean, Column, Date, DateTime, Integer, MetaData,
                        String, Table, bindparam, or_, select)

from clearsim.db import (dialect_insert, get_row, insert_new, prebuilt, update_row,
                         update_rows, upsert, upsert_many)
from clearsim.domain.calendar import next_month_start
from clearsim.handling import Transitions

metadata = MetaData()


class TreatedState(StrEnum):
    """A claim treated in this region's hospitals, as the treating region holds it."""
    VERIFYING = "verifying"    # admission sent to the insuring region for its verdict
    ADMITTED = "admitted"      # verdict: direct settlement
    REFUSED = "refused"        # verdict: no direct settlement (the patient pays, claims home)
    CHARGED = "charged"        # charges classed by this region's catalog
    SETTLED = "settled"        # settled here; the insuring region has not answered yet
    RESETTLING = "resettling"  # the insuring region disagreed with the parameters settled
                               # with: reversed and settled again, its answer awaited
    CONFIRMED = "confirmed"    # the insuring region recomputed the same fund pay
    MISMATCH = "mismatch"      # the insuring region recorded it and recomputed otherwise
    REJECTED = "rejected"      # this region stopped the claim (unknown code, wrong total...)
    FAILED = "failed"          # someone downstream refused what this region sent


TREATED = Transitions({
    None: {TreatedState.VERIFYING},
    TreatedState.VERIFYING: {TreatedState.ADMITTED, TreatedState.REFUSED,
                             TreatedState.FAILED},
    # REFUSED from ADMITTED or CHARGED: the hospital reversed a request it had no answer
    # to, or an interface refusal no resend repaired ended direct settlement (also SETTLED)
    TreatedState.ADMITTED: {TreatedState.CHARGED, TreatedState.REFUSED, TreatedState.REJECTED,
                            TreatedState.FAILED},
    TreatedState.CHARGED: {TreatedState.SETTLED, TreatedState.REFUSED, TreatedState.REJECTED,
                           TreatedState.FAILED},
    TreatedState.SETTLED: {TreatedState.CONFIRMED, TreatedState.MISMATCH,
                           TreatedState.RESETTLING, TreatedState.FAILED, TreatedState.REFUSED},
    TreatedState.RESETTLING: {TreatedState.CONFIRMED, TreatedState.MISMATCH,
                              TreatedState.FAILED},
    TreatedState.REFUSED: {TreatedState.FAILED},
})

# Treated claims a hospital may still reverse (2601): nothing settled yet.
REVERSIBLE = (TreatedState.VERIFYING, TreatedState.ADMITTED, TreatedState.CHARGED)

# Treated claims the insuring region has answered: the region's ledger as treating region.
ANSWERED = (TreatedState.CONFIRMED, TreatedState.MISMATCH)


class InsuredState(StrEnum):
    """A claim of one of this region's insured, as the insuring region holds it."""
    ADMITTED = "admitted"      # identity and filing verified: direct settlement allowed
    REFUSED = "refused"        # verification failed: no direct settlement
    SETTLED = "settled"        # settlement recorded, and recomputed to the fen
    MISMATCH = "mismatch"      # settlement recorded, but recomputed otherwise (or stale)
    REVERSED = "reversed"      # the treating region cancelled that settlement; the claim
                               # is settled again
    REJECTED = "rejected"      # the treating region stopped the claim
    MANUAL = "manual"          # reimbursed by hand at home


INSURED = Transitions({
    None: {InsuredState.ADMITTED, InsuredState.REFUSED, InsuredState.MANUAL},
    # REFUSED or MANUAL from ADMITTED: the hospital had no answer before anything was
    # settled, reversed the admission and sent its patient to manual reimbursement; MANUAL
    # also when direct settlement was given up after an interface refusal
    InsuredState.ADMITTED: {InsuredState.SETTLED, InsuredState.MISMATCH,
                            InsuredState.REJECTED, InsuredState.REFUSED,
                            InsuredState.MANUAL},
    InsuredState.REFUSED: {InsuredState.MANUAL, InsuredState.REJECTED},
    # a reconciliation repair records the hub's record over what was held
    InsuredState.SETTLED: {InsuredState.SETTLED, InsuredState.MISMATCH,
                           InsuredState.REJECTED},
    InsuredState.MISMATCH: {InsuredState.SETTLED, InsuredState.MISMATCH,
                            InsuredState.REVERSED, InsuredState.REJECTED},
    InsuredState.REVERSED: {InsuredState.SETTLED, InsuredState.MISMATCH,
                            InsuredState.REJECTED},
    InsuredState.REJECTED: {InsuredState.REJECTED},
    InsuredState.MANUAL: {InsuredState.REJECTED},
})

# Insured claims whose settlement is recorded: the region's ledger as insuring region.
RECORDED = (InsuredState.SETTLED, InsuredState.MISMATCH)


class FilingState(StrEnum):
    REQUESTED = "requested"    # filed here by the person, not yet registered by the hub
    REGISTERED = "registered"  # registered nationally: valid for direct settlement


class Role(StrEnum):
    """The part this region played in an audit refusal."""
    INSURING = "insuring"      # it refused a claim treated elsewhere
    TREATING = "treating"      # its hospital was refused by another region
    IN_REGION = "in_region"    # both: its own insured in its own hospital


# As insuring region: the persons it insures (identity check at admission).
persons = Table(
    "region_persons", metadata,
    Column("person_id", String(64), primary_key=True),
    Column("insurance_code", String(3), nullable=False),
)

# Every region's policy parameters as this region last received them from the hub.
policy_cache = Table(
    "region_policy_cache", metadata,
    Column("region", String(6), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("policy", JSON, nullable=False),       # wire.policy_json: fen, ratios as strings
)

filings = Table(
    "region_filings", metadata,
    Column("filing_id", String(64), primary_key=True),
    Column("person_id", String(64), nullable=False, index=True),
    Column("insurance_code", String(3), nullable=False),
    Column("insuring_region", String(6), nullable=False),
    Column("treating_region", String(6), nullable=False),
    Column("filing_type", String(32), nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("valid_until", Date, nullable=True),
    Column("state", String(16), nullable=False),  # FilingState
)

# As treating region: claims of patients treated in its hospitals.
treated_claims = Table(
    "region_treated_claims", metadata,
    Column("claim_id", String(64), primary_key=True),
    Column("visit_id", String(64), nullable=False, unique=True),
    Column("person_id", String(64), nullable=False),
    Column("insurance_code", String(3), nullable=False),
    Column("insuring_region", String(6), nullable=False),
    Column("hospital", String(64), nullable=False),
    Column("admitted_at", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False),       # TreatedState
    Column("filing_type", String(32), nullable=True),
    Column("expected_policy_version", Integer, nullable=True),
    Column("cap_used", BigInteger, nullable=True),
    Column("items", JSON, nullable=True),
    Column("settlement_id", String(64), nullable=True, index=True),
    Column("settlement", JSON, nullable=True),
    Column("agreed", Boolean, nullable=True),
    Column("error", JSON, nullable=True),
    Column("settled_on", Date, nullable=True, index=True),
    Column("paid_in", String(32), nullable=True),      # the clearing that paid the hospital
    Column("discharged_at", DateTime(timezone=True), nullable=True),
    # catalog code -> {item_class, b_selfpay_share}: how this region classed it wrongly
    # (a ``mapping`` fault struck the classification)
    Column("mapping", JSON, nullable=True),
    # set when the insuring region disagreed and the settlement was reversed: the
    # settlement id reversed, and {"settlement": its amounts, "cause": the error}
    Column("reversed_settlement_id", String(64), nullable=True),
    Column("reversal", JSON, nullable=True),
)

# As insuring region: what its insured were settled elsewhere (and manual reimbursements).
insured_claims = Table(
    "region_insured_claims", metadata,
    Column("claim_id", String(64), primary_key=True),
    Column("visit_id", String(64), nullable=True),
    Column("person_id", String(64), nullable=False, index=True),   # the audit's history
    Column("insurance_code", String(3), nullable=False),
    Column("treating_region", String(6), nullable=False),
    Column("hospital", String(64), nullable=False),
    Column("state", String(16), nullable=False),       # InsuredState
    Column("settlement_id", String(64), nullable=True),
    Column("total", BigInteger, nullable=True),
    Column("fund_pay", BigInteger, nullable=True),
    Column("personal_pay", BigInteger, nullable=True),
    Column("own_fund_pay", BigInteger, nullable=True),
    Column("policy_version", Integer, nullable=True),
    Column("settlement", JSON, nullable=True),
    Column("error", JSON, nullable=True),
    Column("settled_on", Date, nullable=True, index=True),
    Column("claim_date", Date, nullable=True),
    Column("item_counts", JSON, nullable=True),      # lines per catalog code, for the audit
    # the first recomputation that disagreed: {code, message, settlement_id, fund_pay (as
    # settled), recomputed, detected_on}; kept when the claim is settled again
    Column("disagreement", JSON, nullable=True),
    Column("reversed_settlement_id", String(64), nullable=True),
)

# Audit refusals, in the role this region plays (Role).
refusals = Table(
    "region_refusals", metadata,
    Column("settlement_id", String(64), primary_key=True),
    Column("claim_id", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("hospital", String(64), nullable=False),
    Column("rule", String(32), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("refused_on", Date, nullable=False),
    Column("upheld", Boolean, nullable=True),
    Column("decided_on", Date, nullable=True),
    Column("deducted_in", String(32), nullable=True),
    Column("returned_in", String(32), nullable=True),
)

# Fund use per person, insurance type and calendar year: the annual cap's ledger.
cap_usage = Table(
    "region_cap_usage", metadata,
    Column("person_id", String(64), primary_key=True),
    Column("insurance_code", String(3), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("used", BigInteger, nullable=False),
)

# Monthly clearing as this region sees it: its own figures beside the hub's notice.
clearings = Table(
    "region_clearings", metadata,
    Column("clearing_id", String(32), primary_key=True),
    Column("month", String(6), nullable=False),
    Column("payable", BigInteger, nullable=False),
    Column("receivable", BigInteger, nullable=False),
    Column("own_payable", BigInteger, nullable=False),
    Column("own_receivable", BigInteger, nullable=False),
    Column("disbursed", BigInteger, nullable=True),
    Column("paid_to_hospitals", BigInteger, nullable=True),
    Column("state", String(255), nullable=True),   # set when the hub fails the window
)

# Which version of its own policy this region has published to the hub.
published = Table(
    "region_published_policy", metadata,
    Column("region", String(6), primary_key=True),
    Column("version", Integer, nullable=False),
)


def _month(column, month: str):
    """``column`` (a date) falls in clearing month ``month`` (YYYYMM)."""
    first = date(int(month[:4]), int(month[4:]), 1)
    return (column >= first) & (column < next_month_start(first))


def _month_bounds(month: str) -> dict:
    """The parameters of a prebuilt "in ``month``" filter: its first day, the next month's."""
    first = date(int(month[:4]), int(month[4:]), 1)
    return {"month_first": first, "month_after": next_month_start(first)}


def _in_month(column):
    return (column >= bindparam("month_first")) & (column < bindparam("month_after"))


# -- persons, policies, filings ------------------------------------------------------

def get_person(conn, person_id: str):
    return get_row(conn, persons, persons.c.person_id, person_id)


def put_persons(conn, insured: Mapping[str, str]) -> None:
    """Register the persons a region insures (person id -> insurance code), in one
    executemany."""
    upsert_many(conn, persons, [{"person_id": person_id, "insurance_code": code}
                                for person_id, code in insured.items()])


def cached_policy(conn, region: str):
    return get_row(conn, policy_cache, policy_cache.c.region, region)


def put_cached_policy(conn, region: str, version: int, policy: dict) -> None:
    upsert(conn, policy_cache, {"region": region, "version": version, "policy": policy})


def cached_versions(conn, regions: list[str]) -> dict[str, int]:
    """The version held of each of these regions' policies (absent: none held)."""
    if not regions:
        return {}
    rows = conn.execute(select(policy_cache.c.region, policy_cache.c.version)
                        .where(policy_cache.c.region.in_(regions)))
    return {row.region: row.version for row in rows}


def put_cached_policies(conn, rows: list[dict]) -> None:
    """Hold these copies (region, version, policy), in one statement."""
    upsert_many(conn, policy_cache, rows)


def published_version(conn, region: str) -> int | None:
    row = get_row(conn, published, published.c.region, region)
    return None if row is None else row["version"]


def put_published_version(conn, region: str, version: int) -> None:
    upsert(conn, published, {"region": region, "version": version})


def put_filing(conn, filing: dict, state: FilingState) -> None:
    upsert(conn, filings, {
        "filing_id": filing["filing_id"], "person_id": filing["person_id"],
        "insurance_code": filing["insurance_code"], "insuring_region": filing["insuring_region"],
        "treating_region": filing["treating_region"], "filing_type": filing["filing_type"],
        "valid_from": filing["valid_from"], "valid_until": filing["valid_until"], "state": state})


def valid_filing(conn, person_id: str, treating_region: str, day: date):
    """The person's latest registered filing for care in ``treating_region`` on ``day``."""
    f = filings.c
    statement = prebuilt((filings, "valid"), lambda: select(filings).where(
        f.person_id == bindparam("person_id"), f.treating_region == bindparam("treating"),
        f.state == FilingState.REGISTERED, f.valid_from <= bindparam("day"),
        or_(f.valid_until.is_(None), f.valid_until >= bindparam("day")))
        .order_by(f.valid_from.desc(), f.filing_id.desc()).limit(1))
    return conn.execute(statement, {"person_id": person_id, "treating": treating_region,
                                    "day": day}).mappings().first()


# -- treated claims (treating role) ---------------------------------------------------

def get_treated(conn, claim_id: str):
    return get_row(conn, treated_claims, treated_claims.c.claim_id, claim_id)


def treated_by_settlement(conn, settlement_id: str):
    return get_row(conn, treated_claims, treated_claims.c.settlement_id, settlement_id)


def _move_treated(conn, claim, end: TreatedState, **values) -> dict:
    """Move ``claim`` (a row) to ``end`` with ``values``: the row as it now stands (the
    values as given: a moment keeps its zone, where SQLite reads it back without one)."""
    TREATED.check(claim["state"], end, what=f"treated claim {claim['claim_id']}")
    update_row(conn, treated_claims, treated_claims.c.claim_id, claim["claim_id"],
               {"state": end, **values})
    return {**claim, "state": end, **values}


def admit_treated(conn, claim_id: str, *, visit_id: str, person_id: str,
                  insurance_code: str, insuring_region: str, hospital: str,
                  admitted_at) -> dict | None:
    """The claim's first state as treating region: its row as written (every other column
    empty), or None, and nothing written, when the region already holds that claim."""
    TREATED.check(None, TreatedState.VERIFYING, what=f"treated claim {claim_id}")
    values = {"claim_id": claim_id, "visit_id": visit_id, "person_id": person_id,
              "insurance_code": insurance_code, "insuring_region": insuring_region,
              "hospital": hospital, "admitted_at": admitted_at,
              "state": TreatedState.VERIFYING}
    if not insert_new(conn, treated_claims, values):
        return None
    return {**dict.fromkeys(treated_claims.c.keys()), **values}


def take_verdict(conn, claim, *, accepted: bool, filing_type: str | None,
                 policy_version: int | None, cap_used: int, error: dict | None) -> dict:
    return _move_treated(conn, claim,
                         TreatedState.ADMITTED if accepted else TreatedState.REFUSED,
                         filing_type=filing_type, expected_policy_version=policy_version,
                         cap_used=cap_used, error=error)


def record_charges(conn, claim, items: list, mapping: dict | None = None) -> dict:
    return _move_treated(conn, claim, TreatedState.CHARGED, items=items, mapping=mapping)


def record_treated_settlement(conn, claim, *, settlement_id: str, settlement: dict,
                              settled_on: date, discharged_at) -> dict:
    return _move_treated(conn, claim, TreatedState.SETTLED, settlement_id=settlement_id,
                         settlement=settlement, settled_on=settled_on,
                         discharged_at=discharged_at)


def resettle_treated(conn, claim, *, cause: dict, settlement_id: str,
                     settlement: dict) -> dict:
    """The insuring region disagreed (``cause``): the settlement held is reversed and
    replaced by ``settlement``, settled again under ``settlement_id``."""
    return _move_treated(conn, claim, TreatedState.RESETTLING,
                         reversed_settlement_id=claim["settlement_id"],
                         reversal={"settlement": claim["settlement"], "cause": cause},
                         settlement_id=settlement_id, settlement=settlement)


def take_confirmation(conn, claim, *, agreed: bool, cause: dict | None) -> dict:
    return _move_treated(conn, claim,
                         TreatedState.CONFIRMED if agreed else TreatedState.MISMATCH,
                         agreed=agreed, error=cause)


def withdraw_treated(conn, claim, error: dict) -> None:
    """The hospital reversed the claim before it was settled: no direct settlement."""
    _move_treated(conn, claim, TreatedState.REFUSED, error=error)


def reversed_(claim) -> bool:
    """Was the claim reversed by its hospital (which went to manual reimbursement)?"""
    return (claim["state"] == TreatedState.REFUSED
            and (claim["error"] or {}).get("code") == "ANSWER_TIMEOUT")


def reject_treated(conn, claim, error: dict) -> None:
    _move_treated(conn, claim, TreatedState.REJECTED, error=error)


def fail_treated(conn, claim, error: dict) -> None:
    _move_treated(conn, claim, TreatedState.FAILED, error=error)


def give_up_direct(conn, claim, error: dict) -> None:
    """No direct settlement after all (an interface refusal no resend repaired): the
    patient pays and claims at home, as after a refusing verdict."""
    _move_treated(conn, claim, TreatedState.REFUSED, error=error)


def mark_paid(conn, claim_ids: list[str], clearing_id: str) -> None:
    update_rows(conn, treated_claims, treated_claims.c.claim_id, claim_ids,
                {"paid_in": clearing_id})


def answered_treated(conn, *, day: date | None = None, month: str | None = None,
                     hospital: str | None = None, other_insuring: str | None = None,
                     unpaid: bool = False):
    """Treated claims the insuring region has answered, filtered: settled on ``day`` or in
    ``month``, of ``hospital``, insured elsewhere than ``other_insuring``, not yet paid."""
    t = treated_claims.c
    filters = (day is not None, month is not None, hospital is not None,
               other_insuring is not None, unpaid)

    def build():      # one statement per combination of filters
        where = [t.state.in_(ANSWERED)]
        if day is not None:
            where.append(t.settled_on == bindparam("day"))
        if month is not None:
            where.append(_in_month(t.settled_on))
        if hospital is not None:
            where.append(t.hospital == bindparam("hospital"))
        if other_insuring is not None:
            where.append(t.insuring_region != bindparam("other"))
        if unpaid:
            where.append(t.paid_in.is_(None))
        return select(treated_claims).where(*where).order_by(t.claim_id)
    params = {"day": day, "hospital": hospital, "other": other_insuring,
              **(_month_bounds(month) if month is not None else {})}
    return conn.execute(prebuilt((treated_claims, "answered", filters), build),
                        params).mappings().all()


# -- insured claims (insuring role) ----------------------------------------------------

def get_insured(conn, claim_id: str):
    return get_row(conn, insured_claims, insured_claims.c.claim_id, claim_id)


def _move_insured(conn, claim, end: InsuredState, **values) -> dict:
    """Move ``claim`` (a row) to ``end`` with ``values``: the row as it now stands."""
    INSURED.check(claim["state"], end, what=f"insured claim {claim['claim_id']}")
    update_row(conn, insured_claims, insured_claims.c.claim_id, claim["claim_id"],
               {"state": end, **values})
    return {**claim, "state": end, **values}


def verify_insured(conn, claim_id: str, *, accepted: bool, visit_id: str, person_id: str,
                   insurance_code: str, claim_date: date, treating_region: str,
                   hospital: str, error: dict | None) -> None:
    """The verdict on an admission: the claim's first state as insuring region."""
    state = InsuredState.ADMITTED if accepted else InsuredState.REFUSED
    INSURED.check(None, state, what=f"insured claim {claim_id}")
    upsert(conn, insured_claims, {
        "claim_id": claim_id, "visit_id": visit_id, "person_id": person_id,
        "insurance_code": insurance_code, "claim_date": claim_date,
        "treating_region": treating_region, "hospital": hospital, "state": state,
        "error": error})


def record_insured_settlement(conn, claim, *, agreed: bool, settlement_id: str, total: int,
                              fund_pay: int, personal_pay: int, own_fund_pay: int | None,
                              policy_version: int, settled_on: date, item_counts: dict,
                              error: dict | None) -> dict:
    return _move_insured(conn, claim,
                         InsuredState.SETTLED if agreed else InsuredState.MISMATCH,
                         settlement_id=settlement_id, total=total, fund_pay=fund_pay,
                         personal_pay=personal_pay, own_fund_pay=own_fund_pay,
                         policy_version=policy_version, settled_on=settled_on,
                         item_counts=item_counts, error=error)


def record_disagreement(conn, claim_id: str, disagreement: dict) -> None:
    """The first recomputation of a claim's settlement that disagreed with it."""
    update_row(conn, insured_claims, insured_claims.c.claim_id, claim_id,
               {"disagreement": disagreement})


def reverse_insured(conn, claim) -> None:
    """The treating region cancelled the settlement held: it leaves the ledger."""
    _move_insured(conn, claim, InsuredState.REVERSED,
                  reversed_settlement_id=claim["settlement_id"])


def withdraw_insured(conn, claim, error: dict) -> None:
    """The admission was reversed by its hospital before anything was settled."""
    _move_insured(conn, claim, InsuredState.REFUSED, error=error)


def reject_insured(conn, claim, error: dict) -> None:
    _move_insured(conn, claim, InsuredState.REJECTED, error=error)


def reimburse_insured(conn, claim_id: str, *, person_id: str, insurance_code: str,
                      treating_region: str, hospital: str, total: int, fund_pay: int,
                      personal_pay: int, policy_version: int, settlement: dict) -> None:
    """A manual reimbursement: the claim's last state as insuring region."""
    held = get_insured(conn, claim_id)
    INSURED.check(None if held is None else held["state"], InsuredState.MANUAL,
                  what=f"insured claim {claim_id}")
    upsert(conn, insured_claims, {
        "claim_id": claim_id, "person_id": person_id, "insurance_code": insurance_code,
        "treating_region": treating_region, "hospital": hospital,
        "state": InsuredState.MANUAL, "total": total, "fund_pay": fund_pay,
        "personal_pay": personal_pay, "own_fund_pay": fund_pay,
        "policy_version": policy_version, "settlement": settlement})


def recorded_insured(conn, *, day: date | None = None, month: str | None = None,
                     person_id: str | None = None, other_treating: str | None = None,
                     excluding: str | None = None):
    """Insured claims with a recorded settlement, filtered like ``answered_treated``."""
    c = insured_claims.c
    filters = (day is not None, month is not None, person_id is not None,
               other_treating is not None, excluding is not None)

    def build():      # one statement per combination of filters
        where = [c.state.in_(RECORDED)]
        if day is not None:
            where.append(c.settled_on == bindparam("day"))
        if month is not None:
            where.append(_in_month(c.settled_on))
        if person_id is not None:
            where.append(c.person_id == bindparam("person_id"))
        if other_treating is not None:
            where.append(c.treating_region != bindparam("other"))
        if excluding is not None:
            where.append(c.claim_id != bindparam("excluding"))
        return select(insured_claims).where(*where).order_by(c.claim_id)
    params = {"day": day, "person_id": person_id, "other": other_treating,
              "excluding": excluding, **(_month_bounds(month) if month is not None else {})}
    return conn.execute(prebuilt((insured_claims, "recorded", filters), build),
                        params).mappings().all()


# -- the annual cap ledger ---------------------------------------------------------------

def cap_used(conn, person_id: str, insurance_code: str, year: int) -> int:
    statement = prebuilt((cap_usage, "used"), lambda: select(cap_usage.c.used).where(
        cap_usage.c.person_id == bindparam("person_id"),
        cap_usage.c.insurance_code == bindparam("insurance_code"),
        cap_usage.c.year == bindparam("year")))
    used = conn.execute(statement, {"person_id": person_id, "insurance_code": insurance_code,
                                    "year": year}).scalar()
    return used or 0


def add_cap_use(conn, person_id: str, insurance_code: str, year: int, fen: int) -> int:
    """Add ``fen`` (negative to reverse) to a person's use of the year's cap, in one
    statement; the use after it."""
    def build():
        add = dialect_insert(conn)(cap_usage)
        return add.on_conflict_do_update(
            index_elements=["person_id", "insurance_code", "year"],
            set_={"used": cap_usage.c.used + add.excluded.used}).returning(cap_usage.c.used)
    return conn.execute(prebuilt(("add_cap_use", conn.dialect.name), build), {
        "person_id": person_id, "insurance_code": insurance_code, "year": year,
        "used": fen}).scalar_one()


# -- audit refusals ----------------------------------------------------------------------

def get_refusal(conn, settlement_id: str):
    return get_row(conn, refusals, refusals.c.settlement_id, settlement_id)


def record_refusal(conn, settlement_id: str, *, claim_id: str, role: Role, hospital: str,
                   rule: str, amount: int, refused_on: date) -> None:
    upsert(conn, refusals, {"settlement_id": settlement_id, "claim_id": claim_id, "role": role,
                            "hospital": hospital, "rule": rule, "amount": amount,
                            "refused_on": refused_on})


def decide_refusal(conn, settlement_id: str, *, upheld: bool, decided_on: date) -> None:
    update_row(conn, refusals, refusals.c.settlement_id, settlement_id,
               {"upheld": upheld, "decided_on": decided_on})


def mark_deducted(conn, settlement_ids: list[str], clearing_id: str) -> None:
    update_rows(conn, refusals, refusals.c.settlement_id, settlement_ids,
                {"deducted_in": clearing_id})


def mark_returned(conn, settlement_ids: list[str], clearing_id: str) -> None:
    update_rows(conn, refusals, refusals.c.settlement_id, settlement_ids,
                {"returned_in": clearing_id})


def refusals_to_deduct(conn, month: str, roles: tuple[Role, ...]):
    """Refusals in ``roles`` decided in ``month`` and not yet deducted from a payment."""
    r = refusals.c
    return conn.execute(select(refusals).where(
        r.role.in_(roles), r.deducted_in.is_(None), _month(r.refused_on, month))
        .order_by(r.settlement_id)).mappings().all()


def refusals_to_return(conn, month: str, roles: tuple[Role, ...]):
    """Refusals in ``roles`` whose appeal was upheld in ``month``, not yet paid back."""
    r = refusals.c
    return conn.execute(select(refusals).where(
        r.role.in_(roles), r.upheld.is_(True), r.returned_in.is_(None),
        _month(r.decided_on, month)).order_by(r.settlement_id)).mappings().all()


def refusals_in(conn, month: str, roles: tuple[Role, ...]):
    """Refusals in ``roles`` that change ``month``'s clearing: refused in it, or whose
    appeal was upheld in it."""
    r = refusals.c
    return conn.execute(select(refusals).where(
        r.role.in_(roles),
        or_(_month(r.refused_on, month), r.upheld.is_(True) & _month(r.decided_on, month)))
        .order_by(r.settlement_id)).mappings().all()


# -- clearing ------------------------------------------------------------------------------

def put_clearing(conn, clearing_id: str, *, month: str, payable: int, receivable: int,
                 own_payable: int, own_receivable: int) -> None:
    upsert(conn, clearings, {"clearing_id": clearing_id, "month": month, "payable": payable,
                             "receivable": receivable, "own_payable": own_payable,
                             "own_receivable": own_receivable})


def fail_clearing(conn, clearing_id: str, state: str) -> None:
    update_row(conn, clearings, clearings.c.clearing_id, clearing_id, {"state": state})


def record_disbursement(conn, clearing_id: str, *, disbursed: int,
                        paid_to_hospitals: int) -> None:
    update_row(conn, clearings, clearings.c.clearing_id, clearing_id,
               {"disbursed": disbursed, "paid_to_hospitals": paid_to_hospitals})

"""The hub's own tables: policy registry, national filing registry, transaction log."""

from __future__ import annotations

from sqlalchemy import (JSON, BigInteger, Boolean, Column, Date, DateTime, Integer, MetaData,
                        String, Table, Text, insert, select, update)

from clearsim.db import get_row, put_row

metadata = MetaData()

policies = Table(
    "hub_policies", metadata,
    Column("admdvs", String(6), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("policy", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

filings = Table(
    "hub_filings", metadata,
    Column("filing_id", String(64), primary_key=True),
    Column("psn_no", String(64), nullable=False, index=True),
    Column("insutype", String(3), nullable=False),
    Column("insuplc_admdvs", String(6), nullable=False),
    Column("mdtrtarea_admdvs", String(6), nullable=False),
    Column("refl_type", String(32), nullable=False),
    Column("begndate", Date, nullable=False),
    Column("enddate", Date, nullable=True),
)

# The transaction log: one row per cross-region claim, in the hub's view.
claims = Table(
    "hub_claims", metadata,
    Column("claim_id", String(64), primary_key=True),
    Column("mdtrt_id", String(64), nullable=True),
    Column("psn_no", String(64), nullable=False),
    Column("insutype", String(3), nullable=False),
    Column("insuring_region", String(6), nullable=False),
    Column("treating_region", String(6), nullable=False),
    Column("hospital", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("setl_id", String(64), nullable=True),
    Column("total", BigInteger, nullable=True),
    Column("fund_pay", BigInteger, nullable=True),
    Column("personal_pay", BigInteger, nullable=True),
    Column("policy_version", Integer, nullable=True),
    Column("insuring_fund_pay", BigInteger, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("claim_date", Date, nullable=False),
    Column("setl_date", Date, nullable=True),
    Column("clearing_id", String(32), nullable=True, index=True),
    Column("record", JSON, nullable=True),            # the ClaimSettled body, for resends
    Column("settled_at", DateTime(timezone=True), nullable=True),
    Column("recon_treating", Boolean, nullable=False, default=False),
    Column("recon_insuring", Boolean, nullable=False, default=False),
    Column("reconciled_on", Date, nullable=True),     # all three parties agree (sim day)
    Column("reconciled_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Audit refusals as the insuring regions reported them, and appeal decisions.
refusals = Table(
    "hub_refusals", metadata,
    Column("setl_id", String(64), primary_key=True),
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
    Column("stmt_date", Date, primary_key=True),
    Column("admdvs", String(6), primary_key=True),
    Column("state", String(16), nullable=False),   # asked, detailing, balanced, repairing,
    Column("attempts", Integer, nullable=False, default=1),  # repaired, escalated
)

cases = Table(
    "hub_cases", metadata,
    Column("case_id", String(64), primary_key=True),
    Column("stmt_date", Date, nullable=False),
    Column("admdvs", String(6), nullable=False),
    Column("setl_id", String(64), nullable=False),
    Column("claim_id", String(64), nullable=True, index=True),
    Column("cause", String(32), nullable=False),
    Column("owner", String(32), nullable=False),
    Column("repair", String(32), nullable=False),
    Column("state", String(16), nullable=False),   # open, repaired, escalated
    Column("resolution", Text, nullable=True),
)

# Monthly clearing windows and each region's position in them.
clearings = Table(
    "hub_clearings", metadata,
    Column("clearing_id", String(32), primary_key=True),
    Column("setlym", String(6), nullable=False, unique=True),
    Column("state", String(16), nullable=False),
    Column("claims", Integer, nullable=False),
)

positions = Table(
    "hub_positions", metadata,
    Column("clearing_id", String(32), primary_key=True),
    Column("admdvs", String(6), primary_key=True),
    Column("payable", BigInteger, nullable=False),
    Column("receivable", BigInteger, nullable=False),
    Column("confirmed", Boolean, nullable=False),
    Column("paid", BigInteger, nullable=True),
    Column("disbursed", BigInteger, nullable=True),
)


def policy_version(conn, admdvs: str) -> int | None:
    return conn.execute(select(policies.c.version).where(policies.c.admdvs == admdvs)).scalar()


def put_policy(conn, admdvs: str, version: int, policy: dict, now) -> None:
    put_row(conn, policies, policies.c.admdvs, admdvs,
           {"admdvs": admdvs, "version": version, "policy": policy, "updated_at": now})


def put_filing(conn, row: dict) -> None:
    put_row(conn, filings, filings.c.filing_id, row["filing_id"], row)


def get_claim(conn, claim_id: str):
    return conn.execute(select(claims).where(claims.c.claim_id == claim_id)).mappings().first()


def insert_claim(conn, **values) -> None:
    conn.execute(insert(claims).values(**values))


def update_claim(conn, claim_id: str, **values) -> None:
    conn.execute(update(claims).where(claims.c.claim_id == claim_id).values(**values))


def get_clearing(conn, setlym: str):
    return conn.execute(select(clearings).where(clearings.c.setlym == setlym)).mappings().first()


def uncleared_claims(conn):
    """Claims not yet in any clearing window (so none is ever counted in two)."""
    return conn.execute(select(claims).where(claims.c.clearing_id.is_(None))).mappings().all()


def insert_window(conn, clearing_id: str, setlym: str, claim_ids: list[str], table) -> None:
    conn.execute(insert(clearings).values(clearing_id=clearing_id, setlym=setlym,
                                          state="notified", claims=len(claim_ids)))
    for position in table.values():
        conn.execute(insert(positions).values(
            clearing_id=clearing_id, admdvs=position.region, payable=position.payable,
            receivable=position.receivable, confirmed=False))
    if claim_ids:
        conn.execute(update(claims).where(claims.c.claim_id.in_(claim_ids))
                     .values(clearing_id=clearing_id))


def set_window_state(conn, clearing_id: str, state: str) -> None:
    conn.execute(update(clearings).where(clearings.c.clearing_id == clearing_id)
                 .values(state=state))


def get_positions(conn, clearing_id: str) -> dict:
    rows = conn.execute(select(positions).where(positions.c.clearing_id == clearing_id))
    return {r["admdvs"]: r for r in rows.mappings()}


def update_position(conn, clearing_id: str, admdvs: str, **values) -> None:
    conn.execute(update(positions).where(positions.c.clearing_id == clearing_id,
                                         positions.c.admdvs == admdvs).values(**values))


def day_rows(conn, day, admdvs: str):
    """The hub's settled cross-region claims of a day in which a region took part."""
    return conn.execute(select(claims).where(
        claims.c.setl_date == day, claims.c.state.in_(("confirmed", "mismatch")),
        (claims.c.treating_region == admdvs) | (claims.c.insuring_region == admdvs))
    ).mappings().all()


def get_reconciliation(conn, day, admdvs: str):
    return conn.execute(select(reconciliations).where(
        reconciliations.c.stmt_date == day, reconciliations.c.admdvs == admdvs)
    ).mappings().first()


def put_reconciliation(conn, day, admdvs: str, state: str, **values) -> None:
    if get_reconciliation(conn, day, admdvs) is None:
        conn.execute(insert(reconciliations).values(stmt_date=day, admdvs=admdvs, state=state,
                                                    **values))
    else:   # a two-column key: the shared upsert takes one
        conn.execute(update(reconciliations).where(
            reconciliations.c.stmt_date == day, reconciliations.c.admdvs == admdvs)
            .values(state=state, **values))


def insert_case(conn, **values) -> None:
    conn.execute(insert(cases).values(**values))


def open_case_for(conn, claim_id: str):
    return conn.execute(select(cases).where(cases.c.claim_id == claim_id,
                                            cases.c.state == "open")).mappings().first()


def open_cases(conn, day, admdvs: str) -> int:
    return len(conn.execute(select(cases.c.case_id).where(
        cases.c.stmt_date == day, cases.c.admdvs == admdvs, cases.c.state == "open")).all())


def update_case(conn, case_id: str, **values) -> None:
    conn.execute(update(cases).where(cases.c.case_id == case_id).values(**values))


def claim_by_setl_id(conn, setl_id: str):
    return conn.execute(select(claims).where(claims.c.setl_id == setl_id)).mappings().first()


def get_refusal(conn, setl_id: str):
    return get_row(conn, refusals, refusals.c.setl_id, setl_id)


def put_refusal(conn, setl_id: str, **values) -> None:
    put_row(conn, refusals, refusals.c.setl_id, setl_id, {"setl_id": setl_id, **values})


def all_refusals(conn):
    return conn.execute(select(refusals)).mappings().all()

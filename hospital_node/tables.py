"""The hospitals' HIS ledger: admissions, charges, settlements and what the fund owes them."""

from __future__ import annotations

from sqlalchemy import (JSON, BigInteger, Boolean, Column, Date, DateTime, Integer, MetaData, String, Table,
                        insert, select, update)

metadata = MetaData()

claims = Table(
    "hospital_claims", metadata,
    Column("claim_id", String(64), primary_key=True),
    Column("hospital", String(64), nullable=False, index=True),
    Column("psn_no", String(64), nullable=False),
    Column("insutype", String(3), nullable=False),
    Column("insuring_region", String(6), nullable=False),
    Column("begntime", DateTime(timezone=True), nullable=False),
    Column("items", JSON, nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("mdtrt_id", String(64), nullable=True),
    Column("setl_id", String(64), nullable=True, index=True),
    Column("fund_pay", BigInteger, nullable=True),       # advanced by the hospital (垫付)
    Column("personal_pay", BigInteger, nullable=True),   # paid by the patient at discharge
    Column("attempts", Integer, nullable=False, default=1),
    Column("error", JSON, nullable=True),
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
    Column("stmt_date", Date, primary_key=True),
    Column("hospital", String(64), primary_key=True),
    Column("state", String(16), nullable=False),   # asked, detailing, balanced, differences
    Column("results", JSON, nullable=True),        # setl_id -> 0/1/2/3
)


def get_claim(conn, claim_id):
    return conn.execute(select(claims).where(claims.c.claim_id == claim_id)).mappings().first()


def insert_claim(conn, **values) -> None:
    conn.execute(insert(claims).values(**values))


def update_claim(conn, claim_id, **values) -> None:
    conn.execute(update(claims).where(claims.c.claim_id == claim_id).values(**values))


def by_setl_ids(conn, setl_ids: list[str]):
    return conn.execute(select(claims).where(claims.c.setl_id.in_(setl_ids))).mappings().all()


def settled_on(conn, day):
    return [c for c in conn.execute(select(claims).where(claims.c.state == "settled"))
            .mappings() if c["begntime"].date() == day]


def put_reconciliation(conn, day, hospital: str, **values) -> None:
    where = (reconciliations.c.stmt_date == day, reconciliations.c.hospital == hospital)
    if conn.execute(select(reconciliations.c.state).where(*where)).first() is None:
        conn.execute(insert(reconciliations).values(stmt_date=day, hospital=hospital, **values))
    else:
        conn.execute(update(reconciliations).where(*where).values(**values))

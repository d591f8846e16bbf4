"""The hub's own tables: policy registry, national filing registry, transaction log."""

from __future__ import annotations

from sqlalchemy import (JSON, BigInteger, Column, Date, DateTime, Integer, MetaData, String,
                        Table, insert, select, update)

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
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


def policy_version(conn, admdvs: str) -> int | None:
    return conn.execute(select(policies.c.version).where(policies.c.admdvs == admdvs)).scalar()


def put_policy(conn, admdvs: str, version: int, policy: dict, now) -> None:
    if policy_version(conn, admdvs) is None:
        conn.execute(insert(policies).values(admdvs=admdvs, version=version, policy=policy,
                                             updated_at=now))
    else:
        conn.execute(update(policies).where(policies.c.admdvs == admdvs)
                     .values(version=version, policy=policy, updated_at=now))


def put_filing(conn, row: dict) -> None:
    found = conn.execute(select(filings.c.filing_id)
                         .where(filings.c.filing_id == row["filing_id"])).first()
    if found is None:
        conn.execute(insert(filings).values(**row))
    else:
        conn.execute(update(filings).where(filings.c.filing_id == row["filing_id"])
                     .values(**row))


def get_claim(conn, claim_id: str):
    return conn.execute(select(claims).where(claims.c.claim_id == claim_id)).mappings().first()


def insert_claim(conn, **values) -> None:
    conn.execute(insert(claims).values(**values))


def update_claim(conn, claim_id: str, **values) -> None:
    conn.execute(update(claims).where(claims.c.claim_id == claim_id).values(**values))

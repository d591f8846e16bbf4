"""A region's own tables: its insured, its filings, cached policies, and claims in both roles."""

from __future__ import annotations

from sqlalchemy import (JSON, BigInteger, Boolean, Column, Date, DateTime, Integer, MetaData,
                        String, Table, insert, select, update)

from clearsim.db import get_row, put_row

metadata = MetaData()

# As insuring region: the persons it insures (identity check at admission).
persons = Table(
    "region_persons", metadata,
    Column("psn_no", String(64), primary_key=True),
    Column("insutype", String(3), nullable=False),
)

# Every region's policy parameters as this region last received them from the hub.
policy_cache = Table(
    "region_policy_cache", metadata,
    Column("admdvs", String(6), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("policy", JSON, nullable=False),
)

filings = Table(
    "region_filings", metadata,
    Column("filing_id", String(64), primary_key=True),
    Column("psn_no", String(64), nullable=False, index=True),
    Column("insutype", String(3), nullable=False),
    Column("insuplc_admdvs", String(6), nullable=False),
    Column("mdtrtarea_admdvs", String(6), nullable=False),
    Column("refl_type", String(32), nullable=False),
    Column("begndate", Date, nullable=False),
    Column("enddate", Date, nullable=True),
    Column("state", String(16), nullable=False),  # requested -> registered
)

# As treating region: claims of patients treated in its hospitals.
treated_claims = Table(
    "region_treated_claims", metadata,
    Column("claim_id", String(64), primary_key=True),
    Column("mdtrt_id", String(64), nullable=False, unique=True),
    Column("psn_no", String(64), nullable=False),
    Column("insutype", String(3), nullable=False),
    Column("insuring_region", String(6), nullable=False),
    Column("hospital", String(64), nullable=False),
    Column("begntime", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False),
    Column("refl_type", String(32), nullable=True),
    Column("expected_policy_version", Integer, nullable=True),
    Column("cap_used", BigInteger, nullable=True),
    Column("items", JSON, nullable=True),
    Column("setl_id", String(64), nullable=True),
    Column("settlement", JSON, nullable=True),
    Column("agreed", Boolean, nullable=True),
    Column("error", JSON, nullable=True),
    Column("setl_date", Date, nullable=True),
    Column("paid_in", String(32), nullable=True),      # the clearing that paid the hospital
)

# As insuring region: what its insured were settled elsewhere (and manual reimbursements).
insured_claims = Table(
    "region_insured_claims", metadata,
    Column("claim_id", String(64), primary_key=True),
    Column("mdtrt_id", String(64), nullable=True),
    Column("psn_no", String(64), nullable=False),
    Column("insutype", String(3), nullable=False),
    Column("treating_region", String(6), nullable=False),
    Column("hospital", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("setl_id", String(64), nullable=True),
    Column("total", BigInteger, nullable=True),
    Column("fund_pay", BigInteger, nullable=True),
    Column("personal_pay", BigInteger, nullable=True),
    Column("own_fund_pay", BigInteger, nullable=True),
    Column("policy_version", Integer, nullable=True),
    Column("settlement", JSON, nullable=True),
    Column("error", JSON, nullable=True),
    Column("setl_date", Date, nullable=True),
    Column("claim_date", Date, nullable=True),
    Column("item_counts", JSON, nullable=True),      # lines per catalog code, for the audit
)

# Audit refusals, in the role this region plays: "insuring" (it refused), "treating" (its
# hospital was refused) or "in_region" (both).
refusals = Table(
    "region_refusals", metadata,
    Column("setl_id", String(64), primary_key=True),
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
    Column("psn_no", String(64), primary_key=True),
    Column("insutype", String(3), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("used", BigInteger, nullable=False),
)

# Monthly clearing as this region sees it: its own figures beside the hub's notice.
clearings = Table(
    "region_clearings", metadata,
    Column("clearing_id", String(32), primary_key=True),
    Column("setlym", String(6), nullable=False),
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
    Column("admdvs", String(6), primary_key=True),
    Column("version", Integer, nullable=False),
)


def get_person(conn, psn_no):
    return get_row(conn, persons, persons.c.psn_no, psn_no)


def put_person(conn, psn_no: str, insutype: str) -> None:
    put_row(conn, persons, persons.c.psn_no, psn_no, {"psn_no": psn_no, "insutype": insutype})


def cached_policy(conn, admdvs):
    return get_row(conn, policy_cache, policy_cache.c.admdvs, admdvs)


def put_cached_policy(conn, admdvs: str, version: int, policy: dict) -> None:
    put_row(conn, policy_cache, policy_cache.c.admdvs, admdvs,
            {"admdvs": admdvs, "version": version, "policy": policy})


def published_version(conn, admdvs):
    row = get_row(conn, published, published.c.admdvs, admdvs)
    return None if row is None else row["version"]


def put_published_version(conn, admdvs: str, version: int) -> None:
    put_row(conn, published, published.c.admdvs, admdvs, {"admdvs": admdvs, "version": version})


def put_filing(conn, row: dict) -> None:
    put_row(conn, filings, filings.c.filing_id, row["filing_id"], row)


def filings_for(conn, psn_no: str, treating_region: str):
    return conn.execute(
        select(filings).where(filings.c.psn_no == psn_no,
                              filings.c.mdtrtarea_admdvs == treating_region)
        .order_by(filings.c.begndate.desc(), filings.c.filing_id.desc())).mappings().all()


def get_treated(conn, claim_id):
    return get_row(conn, treated_claims, treated_claims.c.claim_id, claim_id)


def insert_treated(conn, **values) -> None:
    conn.execute(insert(treated_claims).values(**values))


def update_treated(conn, claim_id, **values) -> None:
    conn.execute(update(treated_claims).where(treated_claims.c.claim_id == claim_id)
                 .values(**values))


def count_treated(conn) -> int:
    return len(conn.execute(select(treated_claims.c.claim_id)).all())


def get_insured(conn, claim_id):
    return get_row(conn, insured_claims, insured_claims.c.claim_id, claim_id)


def put_insured(conn, claim_id: str, **values) -> None:
    put_row(conn, insured_claims, insured_claims.c.claim_id, claim_id,
            {"claim_id": claim_id, **values})


def update_insured(conn, claim_id, **values) -> None:
    conn.execute(update(insured_claims).where(insured_claims.c.claim_id == claim_id)
                 .values(**values))


def cap_used(conn, psn_no: str, insutype: str, year: int) -> int:
    used = conn.execute(select(cap_usage.c.used).where(
        cap_usage.c.psn_no == psn_no, cap_usage.c.insutype == insutype,
        cap_usage.c.year == year)).scalar()
    return used or 0


def add_cap_use(conn, psn_no: str, insutype: str, year: int, fen: int) -> None:
    where = (cap_usage.c.psn_no == psn_no, cap_usage.c.insutype == insutype,
             cap_usage.c.year == year)
    if conn.execute(select(cap_usage.c.used).where(*where)).first() is None:
        conn.execute(insert(cap_usage).values(psn_no=psn_no, insutype=insutype, year=year,
                                              used=fen))
    else:
        conn.execute(update(cap_usage).where(*where).values(used=cap_usage.c.used + fen))


def put_clearing(conn, clearing_id: str, **values) -> None:
    put_row(conn, clearings, clearings.c.clearing_id, clearing_id,
            {"clearing_id": clearing_id, **values})


def update_clearing(conn, clearing_id: str, **values) -> None:
    conn.execute(update(clearings).where(clearings.c.clearing_id == clearing_id).values(**values))


def settled_treated(conn):
    return conn.execute(select(treated_claims).where(
        treated_claims.c.state.in_(("confirmed", "mismatch")))).mappings().all()


def settled_insured(conn):
    return conn.execute(select(insured_claims).where(
        insured_claims.c.state.in_(("settled", "mismatch")))).mappings().all()


def get_refusal(conn, setl_id: str):
    return get_row(conn, refusals, refusals.c.setl_id, setl_id)


def put_refusal(conn, setl_id: str, **values) -> None:
    put_row(conn, refusals, refusals.c.setl_id, setl_id, {"setl_id": setl_id, **values})


def all_refusals(conn):
    return conn.execute(select(refusals)).mappings().all()


def treated_by_setl_id(conn, setl_id: str):
    return get_row(conn, treated_claims, treated_claims.c.setl_id, setl_id)

"""What a region tells whoever drives or reports on it: its read model.

Each query takes a connection and returns plain values under English names, whatever the
tables call their columns; the driver and the report ask these, never the tables.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import bindparam, func, select

from clearsim.db import prebuilt
from clearsim.money import format_fen
from region_node.tables import (FilingState, InsuredState, Role, clearings, filings,
                                insured_claims, policy_cache, refusals, treated_claims)

_AMOUNTS = ("total", "class_a", "class_b", "class_c", "b_selfpay", "in_scope", "deductible",
            "fund_pay", "personal_pay", "cap_left_before")


def _settlement(stored: dict | None) -> dict | None:
    """A stored settlement (fen) as the answer writes it: amounts as yuan strings."""
    if stored is None:
        return None
    return {k: format_fen(v) if k in _AMOUNTS and v is not None else v
            for k, v in stored.items()}


# The queries a driver polls while it waits are built once (clearsim.db.prebuilt).

def policies_held(conn) -> int:
    """How many regions' policies this region holds."""
    statement = prebuilt((policy_cache, "count"),
                         lambda: select(func.count()).select_from(policy_cache))
    return conn.execute(statement).scalar()


def registered_filing_ids(conn) -> set[str]:
    """The filings this region knows as registered nationally."""
    statement = prebuilt((filings, "registered_ids"), lambda: select(filings.c.filing_id)
                         .where(filings.c.state == FilingState.REGISTERED))
    return set(conn.execute(statement).scalars())


def refusals_made(conn) -> int:
    """How many settlements this region refused as the insuring region (its audit)."""
    statement = prebuilt((refusals, "made"), lambda: select(func.count()).select_from(
        refusals).where(refusals.c.role.in_((Role.INSURING, Role.IN_REGION))))
    return conn.execute(statement).scalar()


def insured_claim_state(conn, claim_id: str) -> str | None:
    """The state of one of its insured's claims, as the insuring region; None if unknown."""
    statement = prebuilt((insured_claims, "state"), lambda: select(insured_claims.c.state)
                         .where(insured_claims.c.claim_id == bindparam("claim_id")))
    return conn.execute(statement, {"claim_id": claim_id}).scalar()


def treated_records(conn) -> list[dict]:
    """As treating region, its record of each claim: state, settlement, and whether the
    insuring region agreed (with the error when it did not)."""
    t = treated_claims
    return [{**r, "settlement": _settlement(r["settlement"])} for r in conn.execute(select(
        t.c.claim_id, t.c.state, t.c.settlement, t.c.agreed, t.c.error)).mappings()]


def insured_records(conn) -> list[dict]:
    """As insuring region, its record of each claim: state, settlement and the fund share."""
    t = insured_claims
    return [{**r, "settlement": _settlement(r["settlement"])} for r in conn.execute(select(
        t.c.claim_id, t.c.state, t.c.settlement, t.c.fund_pay)).mappings()]


def settlement_disagreements(conn) -> list[dict]:
    """As insuring region, every claim of its insured whose settlement it disagreed with
    when it recomputed it (a parameter or mapping mismatch), in claim order. Per claim:

    - ``claim_id``, ``treating_region``, ``state`` (the claim's state here: ``settled`` or
      ``mismatch`` once it ends);
    - ``cause``: the code of that first disagreement (``POLICY_VERSION_MISMATCH``: settled
      with another version than its current one; ``POLICY_PARAMETER_MISMATCH``: same
      version, another fund share; ``CATALOG_MAPPING_MISMATCH``: an item classed otherwise
      than the treating region's published catalog says), and ``message``;
    - ``detected_on``: the simulated day it recomputed the settlement and disagreed;
    - ``first_settlement_id``, ``fund_pay_first``: the settlement first made and its fund
      pay in fen (the money settled wrong), ``fund_pay_first_recomputed`` its own
      recomputation of it, and ``at_risk`` = the two's difference (fen, signed: positive
      when the fund would have paid too much);
    - ``final_settlement_id``, ``fund_pay_final``: the settlement that stands and its fund
      pay in fen (what the hospital was answered, reconciled, cleared and paid back);
    - ``fund_pay_recomputed``: its own recomputation of the settlement that stands (fen),
      and ``finally_wrong`` = ``fund_pay_final`` - ``fund_pay_recomputed``, the money that
      stays wrong (zero once repaired; with repair off, what the claim differs by from
      ``clearsim settle`` unless an earlier wrong claim of the person moved the annual cap);
    - ``reversed_settlement_id``: the settlement the treating region reversed (cancelled) to
      settle again, None when nothing was reversed (repair off);
    - ``repaired``: reversed, settled again, and the settlement that stands agrees.
    """
    t = insured_claims.c
    out = []
    for r in conn.execute(select(insured_claims).where(t.disagreement.is_not(None))
                          .order_by(t.claim_id)).mappings():
        first = r["disagreement"]
        if not first:        # a JSON null
            continue
        own = r["own_fund_pay"]
        out.append({
            "claim_id": r["claim_id"], "treating_region": r["treating_region"],
            "state": r["state"], "cause": first["code"], "message": first["message"],
            "detected_on": date.fromisoformat(first["detected_on"]),
            "first_settlement_id": first["settlement_id"], "fund_pay_first": first["fund_pay"],
            "fund_pay_first_recomputed": first["recomputed"],
            "at_risk": (None if first["recomputed"] is None
                        else first["fund_pay"] - first["recomputed"]),
            "final_settlement_id": r["settlement_id"], "fund_pay_final": r["fund_pay"],
            "fund_pay_recomputed": own,
            "finally_wrong": None if own is None else r["fund_pay"] - own,
            "reversed_settlement_id": r["reversed_settlement_id"],
            "repaired": (r["reversed_settlement_id"] is not None
                         and r["state"] == InsuredState.SETTLED),
        })
    return out


def passed_on(conn, month: str) -> bool:
    """Whether this region has passed its disbursement for ``month`` on to its hospitals."""
    statement = prebuilt((clearings, "passed_on"), lambda: select(clearings.c.clearing_id)
                         .where(clearings.c.month == bindparam("month"),
                                clearings.c.paid_to_hospitals.is_not(None)).limit(1))
    return conn.execute(statement, {"month": month}).first() is not None


def paid_to_hospitals(conn) -> dict[str, int | None]:
    """Per clearing window, what this region paid its hospitals (None: not yet)."""
    return {r["clearing_id"]: r["paid_to_hospitals"] for r in conn.execute(select(
        clearings.c.clearing_id, clearings.c.paid_to_hospitals)).mappings()}

"""What the hospitals tell whoever drives or reports on them: their read model.

Each query takes a connection and returns plain values under English names, whatever the
tables call their columns; the driver and the report ask these, never the tables.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import bindparam, func, select

from clearsim.db import prebuilt
from hospital_node.tables import FINAL_RECONCILIATION, ClaimState, claims, reconciliations

# The queries a driver polls while it waits are built once (clearsim.db.prebuilt).


def claim_states(conn, claim_ids: list[str]) -> dict[str, str]:
    """The state of each of these claims the hospitals hold."""
    statement = prebuilt((claims, "states"), lambda: select(claims.c.claim_id, claims.c.state)
                         .where(claims.c.claim_id.in_(bindparam("ids", expanding=True))))
    return dict(conn.execute(statement, {"ids": list(claim_ids)}).all())


def refusals_received(conn) -> dict[str, int]:
    """How many settlements the insuring regions refused, and on how many of those the
    appeal is still to be decided."""
    statement = prebuilt((claims, "refusals_received"), lambda: select(
        func.count(), func.count(claims.c.appeal_upheld))
        .where(claims.c.refused_on.is_not(None)))
    refused, decided = conn.execute(statement).one()
    return {"refused": refused, "appeals_pending": refused - decided}


def settled_days(conn) -> set[date]:
    """The days on which claims were settled."""
    return set(conn.execute(select(claims.c.settled_on).distinct()
                            .where(claims.c.state == ClaimState.SETTLED)).scalars())


def hospitals_settled_on(conn, day: date) -> set[str]:
    """The hospitals with a claim settled on ``day``."""
    statement = prebuilt((claims, "hospitals_settled_on"), lambda: select(
        claims.c.hospital).distinct().where(claims.c.state == ClaimState.SETTLED,
                                            claims.c.settled_on == bindparam("day")))
    return set(conn.execute(statement, {"day": day}).scalars())


def hospitals_reconciled(conn, day: date) -> set[str]:
    """The hospitals whose reconciliation of ``day`` with their platform is finished."""
    statement = prebuilt((reconciliations, "finished"), lambda: select(
        reconciliations.c.hospital).where(
        reconciliations.c.statement_date == bindparam("day"),
        reconciliations.c.state.in_(FINAL_RECONCILIATION)))
    return set(conn.execute(statement, {"day": day}).scalars())


def paid_claim_ids(conn) -> set[str]:
    """The claims whose fund share has come back to the hospital."""
    statement = prebuilt((claims, "paid_ids"), lambda: select(claims.c.claim_id)
                         .where(claims.c.paid_on.is_not(None)))
    return set(conn.execute(statement).scalars())


def settled_claims(conn) -> list[dict]:
    """The hospitals' books of settled claims: what each advanced, was paid back and was
    refused, and when."""
    c = claims
    return [dict(r) for r in conn.execute(select(
        c.c.claim_id, c.c.hospital, c.c.insuring_region, c.c.admitted_at, c.c.settled_on,
        c.c.fund_pay, c.c.paid_amount, c.c.refused_on, c.c.refused_amount, c.c.appeal_upheld,
        c.c.appeal_decided_on).where(c.c.state == ClaimState.SETTLED)).mappings()]


def claim_records(conn) -> list[dict]:
    """The hospitals' record of each claim: state, amounts, error, the wall-clock moments
    of submission, answer and payback, and the audit's refusal."""
    c = claims
    return [dict(r) for r in conn.execute(select(
        c.c.claim_id, c.c.hospital, c.c.state, c.c.total, c.c.fund_pay, c.c.personal_pay,
        c.c.error, c.c.admitted_at, c.c.settled_on, c.c.submitted_at, c.c.answered_at,
        c.c.paid_on, c.c.paid_at, c.c.refused_on, c.c.refused_amount,
        c.c.appeal_upheld)).mappings()]


def reconciliation_differences(conn) -> list[dict]:
    """Every settlement a hospital's daily reconciliation with its platform found not
    balanced, with the result code of the row, by day and hospital."""
    out = []
    for r in conn.execute(select(
            reconciliations.c.statement_date, reconciliations.c.hospital,
            reconciliations.c.results).where(reconciliations.c.results.is_not(None))
            .order_by(reconciliations.c.statement_date, reconciliations.c.hospital)).mappings():
        for settlement_id, result in sorted((r["results"] or {}).items()):
            if result:
                out.append({"statement_date": r["statement_date"], "hospital": r["hospital"],
                            "settlement_id": settlement_id, "result": result})
    return out


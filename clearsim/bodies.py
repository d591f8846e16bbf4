"""Bodies that more than one node builds, built in one place (English names, money in fen).

The hub asks each region for its daily reconciliation (3201 / 3202) and so does each
hospitals node ask its platform: the two build the same ``ReconcileTotals`` and
``ReconcileDetails``, so both import them from here. The hospitals' itemised charges
(``charge_lines``) are here too, for the driver's ``SubmitClaim`` to build them the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal

from clearsim.domain.reconciliation import Totals
from clearsim.domain.settlement import ChargeItem


def charge_lines(items: Iterable[ChargeItem]) -> list[dict]:
    """Itemised charges (2301 fee lines): one line per item, quantity one."""
    return [{"line_no": f"{n:04d}", "catalog_code": item.code,
             "hospital_item_code": item.code, "quantity": Decimal("1.0000"),
             "unit_price": item.amount, "amount": item.amount}
            for n, item in enumerate(items, start=1)]


def reconcile_totals(party: str, day: date, totals: Totals) -> dict:
    """3201: one day's settlements of ``party`` (a region or a hospital), counted and summed."""
    return {"settling_party": party, "period_start": day, "period_end": day,
            "total": totals.total, "fund_pay": totals.fund_pay, "account_pay": 0,
            "settlement_count": totals.count}


def reconcile_details(party: str, day: date, rows: Iterable[Mapping]) -> dict:
    """3202: one day's settlements of ``party`` row by row. Each row is a mapping with
    ``settlement_id``, ``visit_id``, ``person_id``, ``total`` and ``fund_pay`` (fen)."""
    return {"settling_party": party, "period_start": day, "period_end": day,
            "rows": [{"settlement_id": r["settlement_id"], "visit_id": r["visit_id"],
                      "person_id": r["person_id"], "total": r["total"],
                      "fund_pay": r["fund_pay"]} for r in rows]}

"""Outgoing bodies that more than one node builds, each built here once, in clearsim's words.

Both the hub (with each region) and the hospitals (with their platform) ask for a
reconciliation: 3201 totals, then 3202 details. Both the hospitals and the driver send
itemised charges. Bodies carry English names and money in integer fen; the node loop
translates them to the wire (``clearsim.wire``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal

from clearsim.domain.reconciliation import Totals
from clearsim.domain.settlement import ChargeItem

# What a 3202 detail row says of one settlement; a settlement handed to
# ``reconcile_details`` is any mapping with at least these keys.
STATEMENT_ROW = ("settlement_id", "visit_id", "person_id", "total", "fund_pay")


def charge_lines(items: Iterable[ChargeItem]) -> list[dict]:
    """Itemised charges (2301 fee lines): one line per item, quantity one."""
    return [{"line_no": f"{n:04d}", "catalog_code": item.code,
             "hospital_item_code": item.code, "quantity": Decimal("1.0000"),
             "unit_price": item.amount, "amount": item.amount}
            for n, item in enumerate(items, start=1)]


def _period(settling_party: str, day: date) -> dict:
    return {"settling_party": settling_party, "period_start": day, "period_end": day}


def reconcile_totals(settling_party: str, day: date, totals: Totals) -> dict:
    """A day's totals as the asking party holds them (3201)."""
    return {**_period(settling_party, day), "total": totals.total,
            "fund_pay": totals.fund_pay, "account_pay": 0,
            "settlement_count": totals.count}


def reconcile_details(settling_party: str, day: date,
                      settlements: Iterable[Mapping]) -> dict:
    """A day's settlements, row by row, as the asking party holds them (3202)."""
    return {**_period(settling_party, day),
            "rows": [{key: s[key] for key in STATEMENT_ROW} for s in settlements]}

"""Monthly clearing (月度清算): net each region's position and date every step of the cycle.

A region owes, as insuring region, the fund share of its insured's settlements elsewhere
(payable), and is owed, as treating region, the fund share its hospitals advanced for
patients from elsewhere (receivable). The hub nets the two: a net payer pays the hub, the
hub disburses to net receivers, and every treating region pays its hospitals in full. All
amounts are integer fen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from clearsim.domain.calendar import Calendar, month_end

WINDOW_STATES = ("open", "calculating", "notified", "confirmed", "paid", "disbursed", "failed")


@dataclass(frozen=True)
class ClearingTerms:
    """Working days between the steps (DOMAIN.md §5: reviews of 10 working days,
    disbursement within 7)."""
    notice_working_days: int = 10         # month end -> clearing notice
    payment_working_days: int = 5         # notice -> regions confirm and pay
    disbursement_working_days: int = 7    # payment -> hub disburses
    hospital_payment_working_days: int = 3  # disbursement -> hospitals paid


@dataclass(frozen=True)
class ClearingDates:
    notice: date
    payment: date
    disbursement: date
    hospital_payment: date


def clearing_dates(month: str, calendar: Calendar, terms: ClearingTerms) -> ClearingDates:
    last = month_end(date(int(month[:4]), int(month[4:]), 1))
    notice = calendar.add_working_days(last, terms.notice_working_days)
    payment = calendar.add_working_days(notice, terms.payment_working_days)
    disbursement = calendar.add_working_days(payment, terms.disbursement_working_days)
    return ClearingDates(notice, payment, disbursement,
                         calendar.add_working_days(disbursement,
                                                   terms.hospital_payment_working_days))


@dataclass(frozen=True)
class Position:
    region: str
    payable: int       # owed as insuring region
    receivable: int    # owed to it as treating region

    @property
    def net(self) -> int:
        """Positive: the region pays the hub; negative: the hub pays the region."""
        return self.payable - self.receivable

    @property
    def pays(self) -> int:
        return max(self.net, 0)

    @property
    def receives(self) -> int:
        return max(-self.net, 0)


def positions(settlements: Iterable[tuple[str, str, int]],
              regions: Iterable[str]) -> dict[str, Position]:
    """``settlements``: (insuring region, treating region, fund pay) of one month's
    cross-region settlements. Every region gets a position, zero if it had none."""
    payable = {r: 0 for r in regions}
    receivable = dict(payable)
    for insuring, treating, fund in settlements:
        payable[insuring] += fund
        receivable[treating] += fund
    return {r: Position(r, payable[r], receivable[r]) for r in sorted(payable)}

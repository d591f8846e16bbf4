"""Monthly netting and the clearing timetable, worked by hand."""

from __future__ import annotations

from datetime import date

from clearsim.domain.calendar import Calendar
from clearsim.domain.clearing import ClearingTerms, clearing_dates, positions


def test_three_regions_netted_by_hand():
    # Jiujiang patients in Beijing: 7,950.00 + 1,000.00; Beijing patients in Jiujiang:
    # 6,435.00; Shanghai patients in Beijing: 15,012.65.
    month = [("360400", "110000", 795_000), ("360400", "110000", 100_000),
             ("110000", "360400", 643_500), ("310000", "110000", 1_501_265)]
    p = positions(month, ["110000", "310000", "360400", "440100"])
    # Beijing owes 6,435.00 and is owed 8,950.00 + 15,012.65 = 23,962.65 -> receives 17,527.65
    assert (p["110000"].payable, p["110000"].receivable) == (643_500, 2_396_265)
    assert (p["110000"].pays, p["110000"].receives) == (0, 1_752_765)
    # Jiujiang owes 8,950.00, is owed 6,435.00 -> pays 2,515.00
    assert (p["360400"].net, p["360400"].pays) == (251_500, 251_500)
    # Shanghai pays its 15,012.65; Guangzhou has nothing
    assert p["310000"].pays == 1_501_265 and p["440100"].net == 0
    # the hub neither keeps nor lacks a fen
    assert sum(x.pays for x in p.values()) == sum(x.receives for x in p.values()) == 1_752_765
    assert sum(x.net for x in p.values()) == 0


def test_the_timetable_counts_working_days_from_the_month_end():
    # March 2019 ends on Sunday 31; +10 working days = Fri 12 Apr (no holidays here),
    # +5 = Fri 19 Apr, +7 = Tue 30 Apr, +3 = Fri 3 May.
    dates = clearing_dates("201903", Calendar(), ClearingTerms())
    assert (dates.notice, dates.payment, dates.disbursement, dates.hospital_payment) == (
        date(2019, 4, 12), date(2019, 4, 19), date(2019, 4, 30), date(2019, 5, 3))
    # With 1-4 May as holidays, the hospitals are paid on Wed 8 May instead.
    may = Calendar(holidays=frozenset(date(2019, 5, d) for d in range(1, 5)))
    assert clearing_dates("201903", may, ClearingTerms()).hospital_payment == date(2019, 5, 8)

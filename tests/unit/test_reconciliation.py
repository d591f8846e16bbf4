"""Reconciliation by hand: totals, every 3202 result, causes and owners."""

from clearsim.domain.reconciliation import (BALANCED, DATA_DIFFER, INSTITUTION_MORE,
                                            PLATFORM_MORE, Case, Row, case_for, compare_details,
                                            totals)

HUB = {"S1": Row("S1", 2_000_000, 795_000), "S2": Row("S2", 500_000, 100_000),
       "S3": Row("S3", 100_000, 50_000)}


def test_totals_count_and_add_up():
    t = totals(HUB.values())
    assert (t.count, t.total, t.fund_pay) == (3, 2_600_000, 945_000)
    assert totals([]) == totals([]) and totals([]).count == 0


def test_every_detail_result():
    region = {"S1": Row("S1", 2_000_000, 795_000),          # the same
              "S3": Row("S3", 100_000, 50_001),             # one fen more
              "S4": Row("S4", 300_000, 1_000)}              # the hub never got it
    assert compare_details(HUB, region) == {"S1": BALANCED, "S2": PLATFORM_MORE,
                                            "S3": DATA_DIFFER, "S4": INSTITUTION_MORE}


def test_causes_owners_and_repairs():
    assert case_for(PLATFORM_MORE, "region-360400", True) == \
        Case("MISSING_AT_REGION", "region-360400", "resend")
    assert case_for(DATA_DIFFER, "region-360400", True) == \
        Case("AMOUNT_DIFFERS", "region-360400", "reversal and resend")
    assert case_for(DATA_DIFFER, "region-110000", False).repair == "escalate"
    assert case_for(INSTITUTION_MORE, "region-110000", False) == \
        Case("MISSING_AT_HUB", "hub", "escalate")

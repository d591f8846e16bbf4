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


def test_retry_delays_back_off_within_bounds_and_repeat_for_a_seed():
    import random

    from clearsim.domain.reconciliation import ReconciliationTerms

    terms = ReconciliationTerms(retry_initial_working_days=1, retry_max_working_days=4,
                                retry_jitter_working_days=0)
    assert [terms.retry_delay(n, random.Random(1)) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 4, 4]
    jittered = ReconciliationTerms(retry_jitter_working_days=2)
    delays = [jittered.retry_delay(3, random.Random(seed)) for seed in range(50)]
    assert set(delays) == {4, 5, 6}                     # 4 plus 0, 1 or 2 days
    assert delays == [jittered.retry_delay(3, random.Random(seed)) for seed in range(50)]

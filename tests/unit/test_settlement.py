"""The settlement rule, case by case, with every amount worked out by hand (in fen).

Jiujiang's resident policy (DOMAIN.md §4): in-region level 1/2/3 = 100/400/600 yuan at
90/80/60 %; cross-region referred 600 at 50 %, not referred 800 at 40 %; cap 150,000.
"""

from __future__ import annotations

from datetime import date

import pytest

from clearsim.domain.catalog import Catalog, CatalogItem, ItemClass
from clearsim.domain.policy import FilingType, InsuranceType, Plan, Policy, Tier
from clearsim.domain.settlement import (ChargeItem, TierChoice, YearToDate, choose_tier,
                                        fund_share, settle)
from clearsim.errors import ErrorCode
from clearsim.money import Ratio
from clearsim.sim.claims import Claim, Person
from clearsim.sim.scenario import Hospital, Region, Scenario, SimConfig
from clearsim.sim.settle_cli import settle_claim

R = Ratio.parse
YUAN = 100

JIUJIANG = Policy("360400", 3, {InsuranceType.RESIDENT: Plan(150_000 * YUAN, {
    "in_region.level1": Tier(100 * YUAN, R("0.90")),
    "in_region.level2": Tier(400 * YUAN, R("0.80")),
    "in_region.level3": Tier(600 * YUAN, R("0.60")),
    "cross_region.referred": Tier(600 * YUAN, R("0.50")),
    "cross_region.not_referred": Tier(800 * YUAN, R("0.40")),
})})
BEIJING_CATALOG = Catalog("110000", {
    "D100": CatalogItem("D100", "amoxicillin", ItemClass.A),
    "T300": CatalogItem("T300", "MRI head", ItemClass.B, R("0.10")),
    "S500": CatalogItem("S500", "private ward", ItemClass.C),
})
JIUJIANG_CATALOG = Catalog("360400", {
    "D100": CatalogItem("D100", "amoxicillin", ItemClass.A),
    "T300": CatalogItem("T300", "MRI head", ItemClass.B, R("0.20")),
})
WORKED = [ChargeItem("D100", 1_200_000), ChargeItem("T300", 500_000),
          ChargeItem("S500", 300_000)]


def direct(items, tier, cap_used=0, catalog=BEIJING_CATALOG, policy=JIUJIANG):
    return settle(items=items, catalog=catalog, policy=policy,
                  insurance=InsuranceType.RESIDENT, choice=TierChoice("direct", tier),
                  cap_used=cap_used)


def test_the_worked_example():
    s = direct(WORKED, "cross_region.referred")
    # A 12,000 + B 5,000 (self-pay 10% = 500) + C 3,000 = 20,000.00
    assert (s.class_a, s.class_b, s.class_c, s.b_selfpay) == (1_200_000, 500_000, 300_000,
                                                              50_000)
    assert s.in_scope == 1_650_000                    # 12,000 + 5,000 - 500
    assert s.deductible == 60_000
    assert s.fund_pay == 795_000                      # (16,500 - 600) x 0.50
    assert s.personal_pay == 1_205_000                # 20,000 - 7,950
    assert (s.status, s.tier, s.policy_version) == ("direct", "cross_region.referred", 3)


@pytest.mark.parametrize("tier, deductible, fund", [
    ("in_region.level1", 10_000, 1_476_000),          # (16,500 - 100) x 0.90 = 14,760.00
    ("in_region.level2", 40_000, 1_288_000),          # (16,500 - 400) x 0.80 = 12,880.00
    ("in_region.level3", 60_000, 954_000),            # (16,500 - 600) x 0.60 =  9,540.00
    ("cross_region.referred", 60_000, 795_000),       # (16,500 - 600) x 0.50 =  7,950.00
    ("cross_region.not_referred", 80_000, 628_000),   # (16,500 - 800) x 0.40 =  6,280.00
])
def test_every_tier(tier, deductible, fund):
    s = direct(WORKED, tier)
    assert (s.deductible, s.fund_pay, s.personal_pay) == (deductible, fund, 2_000_000 - fund)


@pytest.mark.parametrize("filing, mode, tier", [
    (FilingType.REFERRAL, "direct", "cross_region.referred"),
    (FilingType.RELOCATED, "direct", "cross_region.referred"),
    (FilingType.LONG_TERM_RESIDENT, "direct", "cross_region.referred"),
    (FilingType.EMERGENCY, "direct", "cross_region.referred"),
    (FilingType.TEMPORARY, "direct", "cross_region.not_referred"),
    (None, "manual", "cross_region.not_referred"),
])
def test_every_filing_type(filing, mode, tier):
    choice = choose_tier(insuring_region="360400", treating_region="110000",
                         hospital_level=3, filing=filing)
    assert (choice.mode, choice.tier) == (mode, tier)


@pytest.mark.parametrize("level", [1, 2, 3])
def test_in_region_care_uses_the_hospital_level_whatever_the_filing(level):
    for filing in (None, FilingType.TEMPORARY):
        choice = choose_tier(insuring_region="360400", treating_region="360400",
                             hospital_level=level, filing=filing)
        assert (choice.mode, choice.tier) == ("direct", f"in_region.level{level}")


def test_classes_a_b_c_alone():
    a = direct([ChargeItem("D100", 100_000)], "cross_region.referred")
    assert (a.in_scope, a.fund_pay) == (100_000, 20_000)      # (1,000 - 600) x 0.5 = 200
    b = direct([ChargeItem("T300", 100_000)], "cross_region.referred")
    assert (b.b_selfpay, b.in_scope, b.fund_pay) == (10_000, 90_000, 15_000)  # (900-600)x.5
    c = direct([ChargeItem("S500", 100_000)], "cross_region.referred")
    assert (c.in_scope, c.deductible, c.fund_pay, c.personal_pay) == (0, 0, 0, 100_000)


def test_an_unknown_code_is_a_mapping_error_when_settling_directly():
    s = direct([ChargeItem("D100", 100_000), ChargeItem("X999", 500)], "cross_region.referred")
    assert s.status == "rejected" and s.fund_pay == 0
    assert s.error.code is ErrorCode.CATALOG_CODE_UNKNOWN
    assert s.error.field == "items[1].code" and "X999" in s.error.message


def test_a_rejected_claim_still_reports_its_whole_total():
    # the unknown code is items[1]; items[2] after it still counts: 1,000 + 5 + 20 = 1,025.00
    s = direct([ChargeItem("D100", 100_000), ChargeItem("X999", 500), ChargeItem("S500", 2_000)],
               "cross_region.referred")
    assert (s.status, s.total, s.error.field) == ("rejected", 102_500, "items[1].code")


def test_an_unknown_code_is_self_paid_in_a_manual_reimbursement():
    # Manual: the insuring (Jiujiang) catalog, where S500 is unknown -> class C;
    # T300 is class B there with 20% self-pay. A 12,000 + B 5,000 (-1,000) = S 16,000;
    # not-referred tier: (16,000 - 800) x 0.40 = 6,080.00.
    s = settle(items=WORKED, catalog=JIUJIANG_CATALOG, policy=JIUJIANG,
               insurance=InsuranceType.RESIDENT,
               choice=TierChoice("manual", "cross_region.not_referred"), cap_used=0)
    assert (s.status, s.class_c, s.in_scope, s.fund_pay, s.personal_pay) == (
        "manual", 300_000, 1_600_000, 608_000, 1_392_000)


def test_an_in_scope_amount_below_the_deductible_pays_nothing():
    s = direct([ChargeItem("D100", 50_000)], "cross_region.referred")
    assert (s.deductible, s.fund_pay, s.personal_pay) == (50_000, 0, 50_000)


def test_half_a_fen_rounds_up():
    # (600.01 - 600.00) x 0.50 = 0.005 yuan = half a fen -> 0.01
    assert direct([ChargeItem("D100", 60_001)], "cross_region.referred").fund_pay == 1
    # (601.01 - 600.00) x 0.50 = 0.505 -> 0.51 (half-even would give 0.50)
    assert direct([ChargeItem("D100", 60_101)], "cross_region.referred").fund_pay == 51
    # B self-pay of 0.05 yuan at 10% = 0.005 -> 0.01, so the in-scope amount is 0.04
    b = direct([ChargeItem("T300", 5)], "cross_region.referred")
    assert (b.b_selfpay, b.in_scope) == (1, 4)


def test_b_self_pay_is_rounded_per_item_not_on_the_sum():
    # two class-B items of 0.05 at 10%: each 0.005 -> 0.01, so 0.02 in all
    # (rounding the sum 0.10 x 10% = 0.01 would give 0.01); in scope 0.10 - 0.02 = 0.08
    s = direct([ChargeItem("T300", 5), ChargeItem("T300", 5)], "cross_region.referred")
    assert (s.b_selfpay, s.in_scope) == (2, 8)


def test_the_cap_limits_the_fund_pay_and_never_goes_below_zero():
    # 149,000.00 used of 150,000.00: 1,000.00 left although 7,950.00 is due
    s = direct(WORKED, "cross_region.referred", cap_used=14_900_000)
    assert (s.cap_left_before, s.fund_pay, s.personal_pay) == (100_000, 100_000, 1_900_000)
    over = direct(WORKED, "cross_region.referred", cap_used=16_000_000)
    assert (over.cap_left_before, over.fund_pay) == (0, 0)


def test_a_missing_plan_is_policy_missing():
    s = settle(items=WORKED, catalog=BEIJING_CATALOG, policy=JIUJIANG,
               insurance=InsuranceType.EMPLOYEE,
               choice=TierChoice("direct", "cross_region.referred"), cap_used=0)
    assert s.status == "rejected" and s.error.code is ErrorCode.POLICY_MISSING


def test_a_policy_without_the_tier_is_policy_missing():
    tiers = dict(JIUJIANG.plans[InsuranceType.RESIDENT].tiers)
    del tiers["cross_region.not_referred"]
    partial = Policy("360400", 1, {InsuranceType.RESIDENT: Plan(100, tiers)})
    s = direct(WORKED, "cross_region.not_referred", policy=partial)
    assert s.status == "rejected" and s.error.code is ErrorCode.POLICY_MISSING
    assert "cross_region.not_referred" in s.error.message and s.total == 2_000_000


def test_fund_share_is_what_settle_uses():
    tier = Tier(60_000, R("0.50"))
    assert fund_share(1_650_000, tier, 10_000_000) == (60_000, 795_000)
    assert fund_share(1_650_000, tier, 700_000) == (60_000, 700_000)


# -- across admissions: per-admission deductible, annual cap, year boundary ------------

SCENARIO = Scenario(
    path=None, sim=SimConfig(),
    regions={"360400": Region("360400", "Jiujiang", JIUJIANG, JIUJIANG_CATALOG),
             "110000": Region("110000", "Beijing", None, BEIJING_CATALOG)},
    hospitals={"H-BJ-3": Hospital("H-BJ-3", "110000", 3),
               "H-JJ-2": Hospital("H-JJ-2", "360400", 2)})


def claim(claim_id: str, day: date, amount_yuan: int, person="P-1") -> Claim:
    return Claim(claim_id, day, "H-BJ-3",
                 Person(person, "360400", InsuranceType.RESIDENT, FilingType.REFERRAL),
                 (ChargeItem("D100", amount_yuan * YUAN),))


def test_no_filing_is_a_manual_reimbursement_with_the_insuring_catalog():
    ytd = YearToDate()
    worked = Claim("M", date(2019, 3, 2), "H-BJ-3",
                   Person("P-1", "360400", InsuranceType.RESIDENT, None), tuple(WORKED))
    s = settle_claim(worked, SCENARIO, ytd)
    # Jiujiang catalog: A 12,000 + B 5,000 at 20% (-1,000) = 16,000; S500 unknown -> C.
    # not referred: (16,000 - 800) x 0.40 = 6,080.00; personal 20,000 - 6,080 = 13,920.00
    assert (s.status, s.tier, s.fund_pay, s.personal_pay) == (
        "manual", "cross_region.not_referred", 608_000, 1_392_000)
    assert ytd.used("P-1", InsuranceType.RESIDENT, 2019) == 608_000   # counts toward the cap


def test_in_region_care_uses_the_own_catalog_and_the_level_tier():
    ytd = YearToDate()
    person = Person("P-1", "360400", InsuranceType.RESIDENT, None)
    ok = Claim("I", date(2019, 3, 2), "H-JJ-2", person, tuple(WORKED[:2]))
    s = settle_claim(ok, SCENARIO, ytd)
    # Jiujiang catalog: 12,000 + 5,000 - 20% x 5,000 = 16,000; level 2: (16,000 - 400) x 0.80
    assert (s.status, s.tier, s.in_scope, s.fund_pay) == ("direct", "in_region.level2",
                                                          1_600_000, 1_248_000)
    # S500 is unknown to Jiujiang's catalog: settling directly in-region, a mapping error
    bad = settle_claim(Claim("J", date(2019, 3, 2), "H-JJ-2", person, tuple(WORKED)),
                       SCENARIO, ytd)
    assert (bad.status, bad.error.code, bad.error.field) == ("rejected",
                                                             ErrorCode.CATALOG_CODE_UNKNOWN,
                                                             "items[2].code")
    assert ytd.used("P-1", InsuranceType.RESIDENT, 2019) == 1_248_000   # rejections add 0


def test_the_deductible_applies_to_every_admission():
    ytd = YearToDate()
    first = settle_claim(claim("A", date(2019, 3, 1), 10_000), SCENARIO, ytd)
    second = settle_claim(claim("B", date(2019, 4, 1), 10_000), SCENARIO, ytd)
    # each: (10,000 - 600) x 0.50 = 4,700.00
    assert first.fund_pay == second.fund_pay == 470_000
    assert ytd.used("P-1", InsuranceType.RESIDENT, 2019) == 940_000


def test_the_annual_cap_accumulates_across_admissions_and_resets_in_a_new_year():
    ytd = YearToDate()
    # (200,000 - 600) x 0.5 = 99,700.00 ; then 99,700.00 due but 50,300.00 left
    a = settle_claim(claim("A", date(2019, 5, 1), 200_000), SCENARIO, ytd)
    b = settle_claim(claim("B", date(2019, 9, 1), 200_000), SCENARIO, ytd)
    c = settle_claim(claim("C", date(2019, 12, 31), 10_000), SCENARIO, ytd)
    d = settle_claim(claim("D", date(2020, 1, 1), 10_000), SCENARIO, ytd)
    assert (a.fund_pay, b.fund_pay, c.fund_pay) == (9_970_000, 5_030_000, 0)
    assert d.fund_pay == 470_000                              # a new year, a new cap
    other = settle_claim(claim("E", date(2019, 12, 31), 10_000, person="P-2"), SCENARIO, ytd)
    assert other.fund_pay == 470_000                          # caps are per person


def test_lookups_refuse_unknown_hospital_region_and_policy():
    ytd = YearToDate()
    bad_hospital = Claim("X", date(2019, 1, 2), "H-NOPE", claim("X", date(2019, 1, 2), 1)
                         .person, (ChargeItem("D100", 100),))
    assert settle_claim(bad_hospital, SCENARIO, ytd).error.code is ErrorCode.HOSPITAL_UNKNOWN
    stranger = Claim("Y", date(2019, 1, 2), "H-BJ-3",
                     Person("P", "999999", InsuranceType.RESIDENT, None),
                     (ChargeItem("D100", 100),))
    assert settle_claim(stranger, SCENARIO, ytd).error.code is ErrorCode.REGION_UNKNOWN
    no_policy = Claim("Z", date(2019, 1, 2), "H-BJ-3",
                      Person("P", "110000", InsuranceType.RESIDENT, None),
                      (ChargeItem("D100", 100),))
    assert settle_claim(no_policy, SCENARIO, ytd).error.code is ErrorCode.POLICY_MISSING

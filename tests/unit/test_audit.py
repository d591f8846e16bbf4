"""Audit rules by hand."""

from datetime import date

from clearsim.domain.audit import Admission, AuditRules, Rule, audit
from clearsim.money import Ratio

RULES = AuditRules(duplicate_admission=Rule(3, Ratio(1, 1)),
                   split_admission=Rule(15, Ratio(1, 2)),
                   ultra_high_cost=Rule(10_000_000, Ratio(1, 10)))
FIRST = Admission("C-1", "H-1", date(2019, 3, 1), 2_000_000, 795_000)


def later(days: int, hospital="H-1", total=2_000_000, fund=795_000) -> Admission:
    return Admission("C-2", hospital, date(2019, 3, 1 + days), total, fund)


def test_a_duplicate_admission_is_refused_whole():
    r = audit(later(2), [FIRST], RULES)
    assert (r.rule, r.amount) == ("duplicate_admission", 795_000)


def test_a_split_admission_loses_half_rounded_half_up():
    r = audit(later(10, fund=795_001), [FIRST], RULES)
    assert (r.rule, r.amount) == ("split_admission", 397_501)     # 3,975.005 -> 3,975.01


def test_another_hospital_or_a_long_gap_is_not_a_readmission():
    assert audit(later(2, hospital="H-2"), [FIRST], RULES) is None
    assert audit(later(20), [FIRST], RULES) is None


def test_an_ultra_high_cost_loses_a_tenth_of_the_fund_pay():
    r = audit(later(20, total=10_000_001, fund=4_000_000), [FIRST], RULES)
    assert (r.rule, r.amount) == ("ultra_high_cost", 400_000)
    assert audit(later(20, total=10_000_000), [FIRST], RULES) is None   # not above


def test_no_rules_no_refusals():
    assert audit(later(1), [FIRST], AuditRules()) is None
    assert not AuditRules().active and RULES.active


def test_more_lines_of_one_code_than_the_limit_is_excessive_quantity():
    rules = AuditRules(excessive_quantity=Rule(10, Ratio(1, 5)))
    heavy = Admission("C-3", "H-1", date(2019, 3, 9), 500_000, 200_001,
                      {"D100": 11, "T300": 2})
    r = audit(heavy, [], rules)
    # a fifth of 2,000.01 = 400.002 -> 400.00
    assert (r.rule, r.amount) == ("excessive_quantity", 40_000) and "D100" in r.reason
    assert audit(Admission("C-4", "H-1", date(2019, 3, 9), 500_000, 200_001, {"D100": 10}),
                 [], rules) is None

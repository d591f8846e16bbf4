"""Properties of the settlement rule for random valid claims (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clearsim.domain.catalog import Catalog, CatalogItem, ItemClass
from clearsim.domain.policy import InsuranceType, Plan, Policy, Tier
from clearsim.domain.settlement import ChargeItem, TierChoice, settle
from clearsim.money import Ratio

TIERS = ("in_region.level1", "in_region.level2", "in_region.level3",
         "cross_region.referred", "cross_region.not_referred")
ratios = st.integers(0, 10_000).map(lambda n: Ratio(n, 10_000))
fen = st.integers(0, 50_000_000)


@st.composite
def worlds(draw):
    catalog = Catalog("110000", {
        f"I{i}": CatalogItem(f"I{i}", f"item {i}", cls,
                             draw(ratios) if cls is ItemClass.B else None)
        for i, cls in enumerate(draw(st.lists(st.sampled_from(list(ItemClass)),
                                              min_size=1, max_size=8)))})
    tiers = {t: Tier(draw(st.integers(0, 300_000)), draw(ratios)) for t in TIERS}
    policy = Policy("360400", 1, {InsuranceType.RESIDENT: Plan(draw(fen), tiers)})
    items = draw(st.lists(st.builds(ChargeItem, st.sampled_from(sorted(catalog.items)),
                                    st.integers(0, 5_000_000)), min_size=1, max_size=20))
    choice = TierChoice(draw(st.sampled_from(["direct", "manual"])), draw(st.sampled_from(TIERS)))
    return catalog, policy, items, choice, draw(fen)


def run(catalog, policy, items, choice, cap_used):
    return settle(items=items, catalog=catalog, policy=policy,
                  insurance=InsuranceType.RESIDENT, choice=choice, cap_used=cap_used)


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_amounts_are_ordered_and_add_up(world):
    catalog, policy, items, choice, cap_used = world
    s = run(*world)
    assert 0 <= s.fund_pay <= s.in_scope <= s.total
    assert s.fund_pay + s.personal_pay == s.total == sum(i.amount for i in items)
    assert s.class_a + s.class_b + s.class_c == s.total
    cap_left = max(0, policy.plans[InsuranceType.RESIDENT].annual_cap - cap_used)
    assert s.fund_pay <= cap_left == s.cap_left_before


@settings(max_examples=300, deadline=None)
@given(worlds(), st.randoms(use_true_random=False))
def test_item_order_does_not_matter(world, rnd):
    catalog, policy, items, choice, cap_used = world
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert run(catalog, policy, items, choice, cap_used) == \
        run(catalog, policy, shuffled, choice, cap_used)


@settings(max_examples=200, deadline=None)
@given(worlds(), st.lists(st.lists(st.integers(0, 5_000_000), min_size=1, max_size=5),
                          min_size=1, max_size=12))
def test_a_year_of_admissions_never_pays_more_than_the_annual_cap(world, admissions):
    catalog, policy, _, choice, _ = world
    cap = policy.plans[InsuranceType.RESIDENT].annual_cap
    codes = sorted(catalog.items)
    used = 0
    for amounts in admissions:
        items = [ChargeItem(codes[i % len(codes)], a) for i, a in enumerate(amounts)]
        s = run(catalog, policy, items, choice, used)
        assert s.cap_left_before == cap - used
        used += s.fund_pay
        assert used <= cap


@settings(max_examples=200, deadline=None)
@given(worlds(), st.lists(st.integers(0, 5_000_000), min_size=1, max_size=5))
def test_unknown_codes_are_self_paid_when_manual_and_refused_when_direct(world, unknown):
    catalog, policy, items, choice, cap_used = world
    extra = [ChargeItem(f"UNKNOWN{i}", a) for i, a in enumerate(unknown)]
    known = run(catalog, policy, items, TierChoice("manual", choice.tier), cap_used)
    manual = run(catalog, policy, items + extra, TierChoice("manual", choice.tier), cap_used)
    assert manual.status == "manual" and manual.error is None
    assert manual.class_c == known.class_c + sum(unknown)
    assert (manual.in_scope, manual.fund_pay) == (known.in_scope, known.fund_pay)
    direct = run(catalog, policy, items + extra, TierChoice("direct", choice.tier), cap_used)
    assert direct.status == "rejected" and direct.fund_pay == 0
    assert direct.error.field == f"items[{len(items)}].code"
    assert direct.total == sum(i.amount for i in items + extra)

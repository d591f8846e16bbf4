"""The settlement rule: treating-region catalog, insuring-region policy (DOMAIN.md §3).

One implementation for everyone: ``clearsim settle``, the treating region settling at
discharge, the insuring region recomputing what it records and paying manual
reimbursements all call ``settle`` / ``fund_share``. Pure: integer fen in, integer fen out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clearsim.domain.catalog import Catalog, ItemClass
from clearsim.domain.policy import FilingType, InsuranceType, Policy, Tier
from clearsim.errors import ErrorCode, Rejection
from clearsim.money import Ratio

DIRECT = "direct"
MANUAL = "manual"
REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class ChargeItem:
    code: str
    amount: int   # fen


@dataclass(frozen=True, slots=True)
class TierChoice:
    mode: str   # "direct" | "manual"
    tier: str


@dataclass(frozen=True, slots=True)
class Settlement:
    status: str
    total: int
    class_a: int = 0
    class_b: int = 0
    class_c: int = 0
    b_selfpay: int = 0
    in_scope: int = 0
    deductible: int = 0          # the deductible actually applied: min(tier's, in-scope)
    fund_pay: int = 0
    personal_pay: int = 0
    ratio: Ratio | None = None
    tier: str | None = None
    policy_region: str | None = None
    policy_version: int | None = None
    cap_left_before: int | None = None
    error: Rejection | None = None


def choose_tier(*, insuring_region: str, treating_region: str, hospital_level: int,
                filing: FilingType | None) -> TierChoice:
    """Which tier of the insuring policy applies, and whether settlement is direct."""
    if insuring_region == treating_region:
        return TierChoice(DIRECT, f"in_region.level{hospital_level}")
    if filing is None:
        return TierChoice(MANUAL, "cross_region.not_referred")
    if filing.referred:
        return TierChoice(DIRECT, "cross_region.referred")
    return TierChoice(DIRECT, "cross_region.not_referred")


def fund_share(in_scope: int, tier: Tier, cap_left: int) -> tuple[int, int]:
    """(deductible applied, fund pay) for an in-scope amount: round half-up once, then the
    annual cap; never below zero."""
    deductible = min(tier.deductible, in_scope)
    fund = tier.ratio.apply(in_scope - deductible)
    return deductible, max(0, min(fund, cap_left))


def settle(*, items: Sequence[ChargeItem], catalog: Catalog, policy: Policy,
           insurance: InsuranceType, choice: TierChoice, cap_used: int) -> Settlement:
    """Settle one admission. ``catalog`` is the treating region's for a direct settlement
    (an unknown code is a mapping error) and the insuring region's for a manual
    reimbursement (an unknown code is simply self-paid)."""
    total = 0
    class_a = class_b = class_c = b_selfpay = 0
    manual = choice.mode == MANUAL
    for index, item in enumerate(items):
        total += item.amount
        entry = catalog.items.get(item.code)
        if entry is None:
            if manual:
                class_c += item.amount
                continue
            return Settlement(REJECTED, sum(i.amount for i in items), error=Rejection(
                ErrorCode.CATALOG_CODE_UNKNOWN,
                f"item code {item.code!r} is not in the catalog of treating region "
                f"{catalog.region}: a mapping error, fix the mapping before settling",
                f"items[{index}].code"))
        cls = entry.item_class
        if cls is ItemClass.A:
            class_a += item.amount
        elif cls is ItemClass.B:
            class_b += item.amount
            b_selfpay += entry.b_selfpay_share.apply(item.amount)
        else:
            class_c += item.amount
    plan = policy.plans.get(insurance)
    tier = plan.tiers.get(choice.tier) if plan is not None else None
    if tier is None:
        missing = insurance.value if plan is None else f"{insurance.value}.{choice.tier}"
        return Settlement(REJECTED, total, error=Rejection(
            ErrorCode.POLICY_MISSING,
            f"region {policy.region} has no policy {missing}", "person.insurance"))
    in_scope = class_a + class_b - b_selfpay
    cap_left = max(0, plan.annual_cap - cap_used)
    deductible, fund = fund_share(in_scope, tier, cap_left)
    return Settlement(
        MANUAL if manual else DIRECT, total, class_a, class_b, class_c, b_selfpay, in_scope,
        deductible, fund, total - fund, tier.ratio, choice.tier, policy.region,
        policy.version, cap_left)


class YearToDate:
    """Fund use per person, insurance type and calendar year: the annual cap's ledger."""

    def __init__(self) -> None:
        self._used: dict[tuple[str, InsuranceType, int], int] = {}

    def used(self, person: str, insurance: InsuranceType, year: int) -> int:
        return self._used.get((person, insurance, year), 0)

    def add(self, person: str, insurance: InsuranceType, year: int, fen: int) -> None:
        key = (person, insurance, year)
        self._used[key] = self._used.get(key, 0) + fen

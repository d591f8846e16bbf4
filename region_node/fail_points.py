"""Where faults strike a region (clearsim.faults fail points): the class its catalog gives
a charged item (``mapping``, 对照错误) and the copy of an insuring region's policy it settles
with (``policy``, 参数不一致). The treating role asks these; a run without faults gets the
catalog and the copy as they are.
"""

from __future__ import annotations

from decimal import Decimal

from clearsim.domain.catalog import Catalog, CatalogItem, ItemClass
from clearsim.domain.policy import Plan, Policy, Tier
from clearsim.money import Ratio, parse_fen
from region_node.common import RegionContext


def struck_mapping(ctx: RegionContext, claim_id: str, codes, day) -> dict | None:
    """The ``mapping`` fail point, where charges are classed: per catalog code of the claim
    that a fault maps wrongly, the class (and B self-pay share) it is given."""
    wrong = {}
    for code in sorted(set(codes)):
        fault = ctx.faults.fire("mapping", day, claim_id, claim_id=claim_id, code=code)
        if fault is None:
            continue
        item_class = fault.get("class")
        share = fault.get("share") if item_class == ItemClass.B.value else None
        wrong[code] = {"item_class": item_class,
                       "b_selfpay_share": None if share is None else str(share)}
    return wrong or None


def catalog_for(ctx: RegionContext, mapping: dict | None) -> Catalog:
    """Our catalog, with the classes a wrong mapping gave (``struck_mapping``)."""
    catalog = ctx.config.catalog
    if not mapping:
        return catalog
    items = dict(catalog.items)
    for code, wrong in mapping.items():
        share = wrong["b_selfpay_share"]
        items[code] = CatalogItem(code, items[code].name, ItemClass(wrong["item_class"]),
                                  None if share is None else Ratio.parse(share))
    return Catalog(catalog.region, items)


def _plausible_ratio(ratio: Ratio) -> Ratio:
    value = ratio.as_decimal()
    wrong = value + Decimal("0.10") if value <= Decimal("0.90") else value - Decimal("0.10")
    return Ratio.parse(str(wrong))


def wrong_copy(policy: Policy, change: str, value: Decimal | None,
               tier: str | None) -> Policy:
    """A stale or corrupted copy of ``policy``: ``stale`` is the version before (with
    ``value`` as its ratio, if given), ``deductible`` / ``cap`` (yuan) and ``ratio`` are
    wrong values, ``value`` or else a plausible one (half the deductible, half the annual
    cap, the ratio 0.10 higher). ``tier`` limits a tier's change to that tier."""
    plans = {}
    for insurance, plan in policy.plans.items():
        cap = plan.annual_cap
        if change == "cap":
            cap = plan.annual_cap // 2 if value is None else parse_fen(value, "value")
        tiers = {}
        for name, right in plan.tiers.items():
            wrong = right
            if tier is None or name == tier:
                if change == "ratio" or (change == "stale" and value is not None):
                    wrong = Tier(right.deductible, _plausible_ratio(right.ratio) if value is None
                                 else Ratio.parse(value, "value"))
                elif change == "deductible":
                    wrong = Tier(right.deductible // 2 if value is None
                                 else parse_fen(value, "value"), right.ratio)
            tiers[name] = wrong
        plans[insurance] = Plan(cap, tiers)
    version = policy.version - 1 if change == "stale" else policy.version
    return Policy(policy.region, version, plans)


def policy_copy(ctx: RegionContext, claim, policy: Policy, tier: str, day) -> Policy:
    """The ``policy`` fail point: the copy of the insuring region's policy a settlement is
    made with (the one the hub distributed, unless a fault makes it stale or wrong)."""
    fault = ctx.faults.fire("policy", day, claim["claim_id"], claim_id=claim["claim_id"],
                            region=claim["insuring_region"], tier=tier)
    if fault is None:
        return policy
    return wrong_copy(policy, fault.get("change"), fault.get("value"), fault.get("tier"))

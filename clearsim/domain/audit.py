"""The insuring region's audit of settled claims (审核 / 拒付), with configurable rules.

Rules (DOMAIN.md §5, seed 003's smart-audit categories), checked in this order, the first
that applies deciding: a duplicate admission (the same person at the same hospital again
within a few days), a split admission (readmitted to the same hospital soon after, to
restart the deductible and the per-admission limits), an excessive quantity (more charged
lines of one catalog code than a limit) and an ultra-high cost. A refusal takes a share of
the claim's fund pay, rounded half-up to the fen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from clearsim.money import Ratio


@dataclass(frozen=True)
class Rule:
    limit: int          # days (admission rules), lines (quantity) or fen (ultra-high cost)
    refuse_share: Ratio


@dataclass(frozen=True)
class AuditRules:
    after_working_days: int = 5                  # audit, and appeal decisions, take this long
    duplicate_admission: Rule | None = None      # within N days of the previous admission
    split_admission: Rule | None = None          # within N days (beyond the duplicate window)
    excessive_quantity: Rule | None = None       # more than N lines of one code
    ultra_high_cost: Rule | None = None          # total charges above N fen
    upheld_rules: frozenset[str] = field(default_factory=frozenset)  # appeals that succeed

    @property
    def active(self) -> bool:
        return any((self.duplicate_admission, self.split_admission, self.excessive_quantity,
                    self.ultra_high_cost))


@dataclass(frozen=True)
class Admission:
    claim_id: str
    hospital: str
    day: date
    total: int
    fund_pay: int
    item_counts: Mapping[str, int] = field(default_factory=dict)   # lines per catalog code


@dataclass(frozen=True)
class Refusal:
    rule: str
    amount: int
    reason: str


def audit(claim: Admission, earlier: Iterable[Admission], rules: AuditRules) -> Refusal | None:
    """``earlier``: the person's other settled admissions known to the insuring region."""
    gaps = [(claim.day - a.day).days for a in earlier
            if a.hospital == claim.hospital and a.claim_id != claim.claim_id and a.day <= claim.day]
    gap = min(gaps, default=None)
    dup, split, high = rules.duplicate_admission, rules.split_admission, rules.ultra_high_cost
    if dup and gap is not None and gap <= dup.limit:
        return _refuse("duplicate_admission", dup, claim,
                       f"admitted again to {claim.hospital} {gap} days after the last admission")
    if split and gap is not None and gap <= split.limit:
        return _refuse("split_admission", split, claim,
                       f"readmitted to {claim.hospital} {gap} days after the last admission")
    quantity = rules.excessive_quantity
    if quantity:
        over = sorted(code for code, n in claim.item_counts.items() if n > quantity.limit)
        if over:
            return _refuse("excessive_quantity", quantity, claim,
                           f"more than {quantity.limit} lines of {', '.join(over)}")
    if high and claim.total > high.limit:
        return _refuse("ultra_high_cost", high, claim,
                       f"charges of {claim.total} fen exceed the {high.limit} fen threshold")
    return None


def _refuse(rule: str, config: Rule, claim: Admission, reason: str) -> Refusal | None:
    amount = config.refuse_share.apply(claim.fund_pay)
    return Refusal(rule, amount, reason) if amount > 0 else None

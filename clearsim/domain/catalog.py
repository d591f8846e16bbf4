"""A treating region's catalog: which items are covered, and how (class A, B or C)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from clearsim.money import Ratio


class ItemClass(str, Enum):
    A = "A"   # 甲类: fully inside the policy scope
    B = "B"   # 乙类: the patient first pays a fixed share, the rest is in scope
    C = "C"   # 丙类: fully self-paid


@dataclass(frozen=True, slots=True)
class CatalogItem:
    code: str
    name: str
    item_class: ItemClass
    b_selfpay_share: Ratio | None = None


@dataclass(frozen=True)
class Catalog:
    region: str
    items: Mapping[str, CatalogItem]

    def get(self, code: str) -> CatalogItem | None:
        return self.items.get(code)

"""An insuring region's policy: per insurance type, the tiers (deductible, ratio) and the cap."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from clearsim.money import Ratio

TIERS = ("in_region.level1", "in_region.level2", "in_region.level3",
         "cross_region.referred", "cross_region.not_referred")


class InsuranceType(str, Enum):
    EMPLOYEE = "employee"   # 职工基本医疗保险, insutype 310
    RESIDENT = "resident"   # 城乡居民基本医疗保险, insutype 390

    @property
    def insutype(self) -> str:
        return _INSUTYPE[self]

    @classmethod
    def from_insutype(cls, code: str) -> "InsuranceType":
        for insurance, value in _INSUTYPE.items():
            if value == code:
                return insurance
        raise ValueError(f"unknown insutype {code!r}")


_INSUTYPE = {InsuranceType.EMPLOYEE: "310", InsuranceType.RESIDENT: "390"}


class FilingType(str, Enum):
    REFERRAL = "referral"                       # 转诊转院
    RELOCATED = "relocated"                     # 异地安置
    LONG_TERM_RESIDENT = "long_term_resident"   # 异地长期居住
    EMERGENCY = "emergency"                     # 急诊抢救
    TEMPORARY = "temporary"                     # 其他临时外出就医

    @property
    def referred(self) -> bool:
        return self is not FilingType.TEMPORARY


@dataclass(frozen=True, slots=True)
class Tier:
    deductible: int   # fen, per admission
    ratio: Ratio


@dataclass(frozen=True)
class Plan:
    annual_cap: int   # fen, per person, insurance type and calendar year
    tiers: Mapping[str, Tier]


@dataclass(frozen=True)
class Policy:
    region: str
    version: int
    plans: Mapping[InsuranceType, Plan]

    def plan(self, insurance: InsuranceType) -> Plan | None:
        return self.plans.get(insurance)

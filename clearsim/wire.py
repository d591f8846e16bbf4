"""Conversions between domain values and message bodies (national field names).

The boundary of STYLE.md habit 6: domain code speaks of fen, ratios, tiers and items;
message bodies speak of ``det_item_fee_sumamt`` and Avro decimals. Only this module (and
the handlers that read bodies) knows both.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from clearsim.domain.policy import InsuranceType, Plan, Policy, Tier
from clearsim.domain.settlement import ChargeItem
from clearsim.errors import ErrorCode, Rejection
from clearsim.money import Ratio, decimal_to_fen, fen_to_decimal

_RATIO_PLACES = Decimal("0.000001")


def money(fen: int) -> Decimal:
    return fen_to_decimal(fen)


def fen(value: Decimal) -> int:
    return decimal_to_fen(value)


def ratio_out(ratio: Ratio) -> Decimal:
    return ratio.as_decimal().quantize(_RATIO_PLACES)


def ratio_in(value: Decimal) -> Ratio:
    return Ratio.parse(format(value, "f"))


# -- errors -------------------------------------------------------------------------

def error_out(rejection: Rejection, node: str) -> dict:
    return {"code": rejection.code.value, "message": rejection.message,
            "field": rejection.field, "node": rejection.node or node}


def error_in(info: dict | None) -> Rejection | None:
    if info is None:
        return None
    try:
        code = ErrorCode(info["code"])
    except ValueError:
        code = ErrorCode.INVALID_INPUT
    return Rejection(code, info["message"], info.get("field"), info.get("node"))


# -- policy -------------------------------------------------------------------------

def policy_out(policy: Policy) -> dict:
    plans = []
    for insurance, plan in sorted(policy.plans.items(), key=lambda kv: kv[0].value):
        plans.append({
            "insutype": insurance.insutype,
            "annual_cap": money(plan.annual_cap),
            "tiers": [{"tier": name, "deductible": money(tier.deductible),
                       "ratio": ratio_out(tier.ratio)}
                      for name, tier in sorted(plan.tiers.items())],
        })
    return {"admdvs": policy.region, "policy_version": policy.version, "plans": plans}


def policy_in(body: dict) -> Policy:
    plans = {}
    for plan in body["plans"]:
        tiers = {t["tier"]: Tier(deductible=fen(t["deductible"]), ratio=ratio_in(t["ratio"]))
                 for t in plan["tiers"]}
        plans[InsuranceType.from_insutype(plan["insutype"])] = Plan(
            annual_cap=fen(plan["annual_cap"]), tiers=tiers)
    return Policy(region=body["admdvs"], version=body["policy_version"], plans=plans)


def policy_to_json(policy: Policy) -> dict:
    """The policy body with decimals as strings, for a JSON column."""
    body = policy_out(policy)
    for plan in body["plans"]:
        plan["annual_cap"] = str(plan["annual_cap"])
        for tier in plan["tiers"]:
            tier["deductible"] = str(tier["deductible"])
            tier["ratio"] = str(tier["ratio"])
    return body


def policy_from_json(data: dict) -> Policy:
    body = {"admdvs": data["admdvs"], "policy_version": data["policy_version"], "plans": [
        {"insutype": p["insutype"], "annual_cap": Decimal(p["annual_cap"]),
         "tiers": [{"tier": t["tier"], "deductible": Decimal(t["deductible"]),
                    "ratio": Decimal(t["ratio"])} for t in p["tiers"]]}
        for p in data["plans"]]}
    return policy_in(body)


# -- charge items -------------------------------------------------------------------

def fee_items_out(items: list[ChargeItem] | tuple[ChargeItem, ...]) -> list[dict]:
    return [{"feedetl_sn": f"{i + 1:04d}", "med_list_codg": item.code,
             "medins_list_codg": item.code, "cnt": Decimal("1.0000"),
             "pric": money(item.amount), "det_item_fee_sumamt": money(item.amount)}
            for i, item in enumerate(items)]


def fee_items_in(items: list[dict]) -> list[ChargeItem]:
    return [ChargeItem(code=item["med_list_codg"], amount=fen(item["det_item_fee_sumamt"]))
            for item in items]


def items_to_json(items) -> list[list]:
    return [[item.code, item.amount] for item in items]


def items_from_json(data: list[list]) -> list[ChargeItem]:
    return [ChargeItem(code=code, amount=amount) for code, amount in data]


# -- message bodies kept in JSON columns ------------------------------------------------

def jsonable(value):
    """A message body as JSON, decimals and times tagged so ``from_jsonable`` restores them."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    return value


def from_jsonable(value):
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            (tag, text), = value.items()
            if tag == "$decimal":
                return Decimal(text)
            if tag == "$datetime":
                return datetime.fromisoformat(text)
            if tag == "$date":
                return date.fromisoformat(text)
        return {k: from_jsonable(v) for k, v in value.items()}
    return value

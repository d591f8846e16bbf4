"""The boundary between the national interface and clearsim's own words (STYLE.md habit 6).

On the wire a body says ``psn_no``, ``setl_id`` and ``det_item_fee_sumamt`` in Avro
decimals; inside, handlers, tables and the driver say ``person_id``, ``settlement_id`` and
``amount`` in integer fen. ``inbound`` and ``outbound`` translate whole bodies, walking the
message's schema, with one table of names (``ENGLISH``; ``clearsim/schemas/README.md``
prints it). Only this module, the codec and the schemas know the national names.

Money coming in is checked on the way: an amount beyond ``MAX_FEN`` in size, or a charge
(an item's amount or price, a claim's total) below zero, is refused as ``INVALID_AMOUNT``
naming the field as the sender wrote it.
"""

from __future__ import annotations

import functools
import json
import weakref
from collections.abc import Callable
from decimal import Decimal

from clearsim.codec import SCHEMAS
from clearsim.domain.policy import InsuranceType, Plan, Policy, Tier
from clearsim.domain.settlement import ChargeItem
from clearsim.errors import ClearsimError, ErrorCode, Rejection
from clearsim.money import MAX_FEN, Ratio, decimal_to_fen, fen_to_decimal, format_fen

_RATIO_PLACES = Decimal("0.000001")

_MAX_YUAN = Decimal(MAX_FEN) / 100
# Charges, which are never below zero (national names): an item's amount and unit price,
# a claim's total.
CHARGES = frozenset({"det_item_fee_sumamt", "pric", "medfee_sumamt"})
# What the message-level size and sign limits leave for the longest sentence of an error.
_SENTENCE = 2000

# -- names: national on the wire, English inside ---------------------------------------

ENGLISH: dict[str, str] = {
    "psn_no": "person_id",
    "insutype": "insurance_code",
    "insuplc_admdvs": "insuring_region",
    "mdtrtarea_admvs": "treating_region",    # the 2401 header really spells it so
    "mdtrtarea_admdvs": "treating_region",
    "fixmedins_code": "hospital",
    "ipt_no": "admission_no",
    "mdtrt_id": "visit_id",
    "setl_id": "settlement_id",
    "setl_ids": "settlement_ids",
    "refused_setl_ids": "refused_settlement_ids",
    "upheld_setl_ids": "upheld_settlement_ids",
    "begntime": "admitted_at",
    "endtime": "discharged_at",
    "setl_time": "settled_at",
    "begndate": "valid_from",
    "enddate": "valid_until",
    "med_type": "care_type",
    "refl_type": "filing_type",
    "feedetl_sn": "line_no",
    "med_list_codg": "catalog_code",
    "medins_list_codg": "hospital_item_code",
    "cnt": "quantity",
    "pric": "unit_price",
    "det_item_fee_sumamt": "amount",
    "chrgitm_lv": "item_class",
    "selfpay_prop": "b_selfpay_share",
    "medfee_sumamt": "total",
    "fund_pay_sumamt": "fund_pay",
    "hifp_pay": "pooled_fund_pay",
    "acct_pay": "account_pay",
    "psn_cash_pay": "personal_pay",
    "class_a_sumamt": "class_a",
    "class_b_sumamt": "class_b",
    "fulamt_ownpay_amt": "class_c",
    "preselfpay_amt": "b_selfpay",
    "inscp_scp_amt": "in_scope",
    "act_pay_dedc": "deductible",
    "pool_prop_selfpay": "ratio",
    "acct_used_flag": "account_used",
    "admdvs": "region",
    "setl_optins": "settling_party",
    "stmt_begndate": "period_start",
    "stmt_enddate": "period_end",
    "stmt_date": "statement_date",
    "stmt_rslt": "result",
    "fixmedins_setl_cnt": "settlement_count",
    "clr_type": "clearing_type",
    "clr_appy_evt_id": "clearing_id",
    "clr_stas": "clearing_state",
    "setlym": "month",
    "infcode": "result_code",
    "inf_refmsgid": "refers_to_msgid",
    "oinfno": "original_transaction",
    "okind": "original_kind",
    "omsgid": "original_msgid",
}
"""National field name -> the name clearsim uses inside. A name not listed is already
English (``accepted``, ``policy_version``, ``tier``) and keeps its spelling."""

_NATIONAL = {english: national for national, english in ENGLISH.items()
             if national != "mdtrtarea_admvs"}


@functools.cache
def _wire_names(kind: str) -> dict[str, str]:
    """English name -> national name of the top-level fields of ``kind``'s schema."""
    try:
        raw = json.loads((SCHEMAS / f"{kind}.avsc").read_text())
    except FileNotFoundError:
        return {}
    return {ENGLISH.get(f["name"], f["name"]): f["name"] for f in raw["fields"]}


def national(english: str, kind: str | None = None) -> str:
    """The wire name of a field named in English inside, for an error's ``field``: an error
    names the field as its sender wrote it. ``kind`` picks the spelling its schema uses
    (the 2401 family writes ``mdtrtarea_admvs``, the filings ``mdtrtarea_admdvs``)."""
    if kind is not None and english in _wire_names(kind):
        return _wire_names(kind)[english]
    return _NATIONAL.get(english, english)


Convert = Callable[[object], object]


def _same(value):
    return value


def _fen_in(national: str):
    """Money in (a Decimal of yuan) to fen, refused when absurd."""
    charge = national in CHARGES

    def fen_in(value):
        if value is None:
            return None
        if abs(value) > _MAX_YUAN:
            raise ClearsimError(ErrorCode.INVALID_AMOUNT,
                                f"{national} is {_yuan(value)} yuan: beyond "
                                f"{format_fen(MAX_FEN)}, more than any amount can be",
                                national)
        if charge and value < 0:
            raise ClearsimError(ErrorCode.INVALID_AMOUNT,
                                f"{national} is {_yuan(value)} yuan: a charge is never "
                                "negative", national)
        return decimal_to_fen(value)
    return fen_in


def _yuan(value: Decimal) -> str:
    text = format(value, "f")
    return text if len(text) <= 40 else f"{value:.6e}"


def _fen_out(value):
    return fen_to_decimal(value) if isinstance(value, int) and not isinstance(value, bool) \
        else value


def _compile(schema, named: dict, inbound: bool, path: str) -> Convert:
    """A function translating one value of ``schema`` (national -> English if ``inbound``)."""
    if isinstance(schema, str):
        return _compile(named[schema], named, inbound, path) if schema in named else _same
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        if len(branches) != 1:
            return _same
        inner = _compile(branches[0], named, inbound, path)
        return _same if inner is _same else (lambda v: None if v is None else inner(v))
    kind = schema["type"]
    if isinstance(kind, (dict, list)):
        return _compile(kind, named, inbound, path)
    if schema.get("logicalType") == "decimal":
        if schema.get("scale") == 2:          # money: integer fen inside
            return _fen_in(path.rsplit(".", 1)[-1].rstrip("[]")) if inbound else _fen_out
        return _same                          # ratios stay exact Decimals
    if kind == "record":
        return _record(schema, named, inbound, path)
    if kind == "array":
        item = _compile(schema["items"], named, inbound, f"{path}[]")
        return _same if item is _same else (lambda v: [item(x) for x in v])
    if kind == "map":
        value = _compile(schema["values"], named, inbound, f"{path}{{}}")
        return _same if value is _same else (lambda v: {k: value(x) for k, x in v.items()})
    return _same


def _record(schema: dict, named: dict, inbound: bool, path: str) -> Convert:
    fields = []
    english_names: dict[str, str] = {}
    for field in schema["fields"]:
        national = field["name"]
        english = ENGLISH.get(national, national)
        if english in english_names:
            raise ValueError(f"{schema['name']}: fields {english_names[english]!r} and "
                             f"{national!r} would both be called {english!r} inside")
        english_names[english] = national
        fields.append((national, english,
                       _compile(field["type"], named, inbound, f"{path}.{national}")))
    for english, national in english_names.items():
        if english != national and english in {f[0] for f in fields}:
            raise ValueError(f"{schema['name']}: {national!r} would be called {english!r}, "
                             "which is another field's national name")
    if inbound:
        def translate_in(record: dict) -> dict:
            return {english: convert(record[national])
                    for national, english, convert in fields if national in record}
        return translate_in

    def translate_out(record: dict) -> dict:
        out = {}
        for national, english, convert in fields:
            if english in record:
                out[national] = convert(record[english])
        return out
    return translate_out


class Translator:
    """Whole message bodies, both ways, compiled once per message kind and schema."""

    def __init__(self, codec):
        self.codec = codec
        self._compiled: dict[tuple[str, bool, int], Convert] = {}

    def _for(self, kind: str, inbound: bool) -> Convert:
        schema = self.codec.parsed_reader(kind) if inbound else self.codec.parsed_writer(kind)
        key = (kind, inbound, id(schema))
        convert = self._compiled.get(key)
        if convert is None:
            body = {**schema, "fields": [f for f in schema["fields"] if f["name"] != "header"]}
            convert = _compile(body, schema.get("__named_schemas", {}), inbound, kind)
            self._compiled[key] = convert
        return convert

    def inbound(self, kind: str, body: dict) -> dict:
        """A decoded body (national names, Avro decimals) as clearsim speaks of it."""
        return self._for(kind, True)(body)

    def outbound(self, kind: str, body: dict) -> dict:
        """A body built inside (English names, fen) with the national names to encode; a
        national name given inside is not a field (it would be missing on the wire)."""
        return self._for(kind, False)(body)


_translators: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def translator(codec) -> Translator:
    """The one translator of a codec (compiled lazily, kept as long as the codec)."""
    found = _translators.get(codec)
    if found is None:
        found = _translators[codec] = Translator(codec)
    return found


def ratio_out(ratio: Ratio) -> Decimal:
    return ratio.as_decimal().quantize(_RATIO_PLACES)


def ratio_in(value: Decimal) -> Ratio:
    return Ratio.parse(format(value, "f"))


# -- errors -------------------------------------------------------------------------

def error_out(rejection: Rejection, node: str) -> dict:
    """A rejection as a message carries it (a sentence cut to what a receiver takes)."""
    field = rejection.field
    return {"code": rejection.code.value, "message": rejection.message[:_SENTENCE],
            "field": field if field is None else field[:255],
            "node": rejection.node or node}


def error_in(info: dict | None) -> Rejection | None:
    if info is None:
        return None
    try:
        code = ErrorCode(info["code"])
    except ValueError:
        code = ErrorCode.INVALID_INPUT
    return Rejection(code, info["message"], info.get("field"), info.get("node"))


# -- policy -------------------------------------------------------------------------

def policy_body(policy: Policy) -> dict:
    """A policy as clearsim speaks of it: English names, money in fen, ratios ``Decimal``."""
    return {"region": policy.region, "policy_version": policy.version, "plans": [
        {"insurance_code": insurance.insutype, "annual_cap": plan.annual_cap,
         "tiers": [{"tier": name, "deductible": tier.deductible,
                    "ratio": ratio_out(tier.ratio)} for name, tier in sorted(plan.tiers.items())]}
        for insurance, plan in sorted(policy.plans.items(), key=lambda kv: kv[0].value)]}


def policy_from_body(body: dict) -> Policy:
    """The policy of an English body (``policy_body``, or a stored copy with string ratios)."""
    plans = {}
    for plan in body["plans"]:
        tiers = {t["tier"]: Tier(deductible=t["deductible"], ratio=ratio_in(Decimal(t["ratio"])))
                 for t in plan["tiers"]}
        plans[InsuranceType.from_insutype(plan["insurance_code"])] = Plan(
            annual_cap=plan["annual_cap"], tiers=tiers)
    return Policy(region=body["region"], version=body["policy_version"], plans=plans)


def policy_json(policy: Policy) -> dict:
    """``policy_body`` for a JSON column: fen ints, ratios as strings."""
    body = policy_body(policy)
    for plan in body["plans"]:
        for tier in plan["tiers"]:
            tier["ratio"] = str(tier["ratio"])
    return body


# -- charge items -------------------------------------------------------------------

def items_to_json(items) -> list[list]:
    return [[item.code, item.amount] for item in items]


def items_from_json(data: list[list]) -> list[ChargeItem]:
    return [ChargeItem(code=code, amount=amount) for code, amount in data]

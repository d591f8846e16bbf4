"""Claim files (SCENARIO.md): a JSON array of claims, each parsed or refused on its own.

A file that is not a JSON array is refused whole (CLAIMS_FILE_INVALID); a bad claim inside
it becomes a ``RejectedClaim`` naming its field, and the other claims are still answered.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from clearsim.domain.policy import FilingType, InsuranceType
from clearsim.domain.settlement import ChargeItem
from clearsim.errors import ClearsimError, ErrorCode, Rejection
from clearsim.money import parse_fen
from clearsim.sim.files import read_user_file

_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class Person:
    id: str
    insuring_region: str
    insurance: InsuranceType
    filing: FilingType | None


@dataclass(frozen=True)
class Claim:
    claim_id: str
    date: date
    hospital: str
    person: Person
    items: tuple[ChargeItem, ...]


@dataclass(frozen=True)
class RejectedClaim:
    claim_id: str
    rejection: Rejection


def _field(obj: dict, key: str, where: str, kind=str):
    if not isinstance(obj, dict):
        raise ClearsimError(ErrorCode.INVALID_INPUT, f"{where or 'claim'} must be an object",
                            where or "claim")
    name = f"{where}.{key}" if where else key
    if key not in obj or obj[key] is None:
        raise ClearsimError(ErrorCode.INVALID_INPUT, f"{name} is missing", name)
    value = obj[key]
    if kind is str and (not isinstance(value, str) or not value.strip()):
        raise ClearsimError(ErrorCode.INVALID_INPUT, f"{name} must be a non-empty string", name)
    if kind is list and not isinstance(value, list):
        raise ClearsimError(ErrorCode.INVALID_INPUT, f"{name} must be an array", name)
    return value


def _amount(value, field: str) -> int:
    """Yuan as a plain decimal string ("12000.00") or a JSON integer, to fen. Exponents,
    underscores, spaces and non-ASCII digits are refused rather than guessed at."""
    if isinstance(value, str) and not _PLAIN_DECIMAL.fullmatch(value):
        raise ClearsimError(ErrorCode.INVALID_AMOUNT,
                            f"amount {value!r} is not a decimal such as \"12000.00\"", field)
    try:
        return parse_fen(value, field)
    except ArithmeticError:   # too many digits for Decimal to hold to the fen
        raise ClearsimError(ErrorCode.INVALID_AMOUNT, f"amount {value!r} is too large",
                            field) from None


def parse_claim(obj, index: int) -> Claim:
    claim_id = _field(obj, "claim_id", "")
    day_text = _field(obj, "date", "", object)
    try:
        if not isinstance(day_text, str) or not _ISO_DATE.fullmatch(day_text):
            raise ValueError(day_text)
        day = date.fromisoformat(day_text)
    except ValueError:
        raise ClearsimError(ErrorCode.INVALID_DATE,
                            f"date {day_text!r} is not a date (YYYY-MM-DD)", "date") from None
    hospital = _field(obj, "hospital", "")
    person = _field(obj, "person", "", dict)
    insurance_text = _field(person, "insurance", "person", object)
    try:
        insurance = InsuranceType(insurance_text)
    except ValueError:
        raise ClearsimError(ErrorCode.INSURANCE_TYPE_UNKNOWN,
                            f"insurance {insurance_text!r} is not one of "
                            f"{', '.join(i.value for i in InsuranceType)}",
                            "person.insurance") from None
    filing_text = person.get("filing")
    try:
        filing = None if filing_text is None else FilingType(filing_text)
    except ValueError:
        raise ClearsimError(ErrorCode.FILING_TYPE_UNKNOWN,
                            f"filing {filing_text!r} is not one of "
                            f"{', '.join(f.value for f in FilingType)} or null",
                            "person.filing") from None
    items = []
    for i, item in enumerate(_field(obj, "items", "", list)):
        where = f"items[{i}]"
        code = _field(item, "code", where)
        if "amount" not in item:
            raise ClearsimError(ErrorCode.INVALID_AMOUNT, f"{where}.amount is missing",
                                f"{where}.amount")
        items.append(ChargeItem(code, _amount(item["amount"], f"{where}.amount")))
    if not items:
        raise ClearsimError(ErrorCode.INVALID_INPUT, "a claim needs at least one item", "items")
    return Claim(claim_id, day, hospital,
                 Person(_field(person, "id", "person"),
                        _field(person, "insuring_region", "person"), insurance, filing),
                 tuple(items))


def load_claims(path) -> list[Claim | RejectedClaim]:
    path = Path(path)
    text = read_user_file(path, ErrorCode.CLAIMS_FILE_INVALID)
    try:
        data = json.loads(text)
    except RecursionError:
        raise ClearsimError(ErrorCode.CLAIMS_FILE_INVALID,
                            f"{path}: JSON nested too deeply", "file") from None
    except json.JSONDecodeError as exc:
        raise ClearsimError(ErrorCode.CLAIMS_FILE_INVALID,
                            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: "
                            f"{exc.msg}", "file") from None
    if not isinstance(data, list):
        raise ClearsimError(ErrorCode.CLAIMS_FILE_INVALID,
                            f"{path}: must be a JSON array of claims, not "
                            f"{type(data).__name__}", "file")
    return parse_claims(data)


def parse_claims(data: list) -> list[Claim | RejectedClaim]:
    """Claims in claims-file format (parsed JSON, or a workload's output), each parsed or
    refused on its own; a repeated claim id is refused."""
    out: list[Claim | RejectedClaim] = []
    seen: set[str] = set()
    for index, obj in enumerate(data):
        claim_id = obj.get("claim_id") if isinstance(obj, dict) else None
        label = claim_id if isinstance(claim_id, str) and claim_id else f"#{index}"
        try:
            claim = parse_claim(obj, index)
        except ClearsimError as exc:
            out.append(RejectedClaim(label, exc.rejection))
            continue
        if claim.claim_id in seen:
            out.append(RejectedClaim(label, Rejection(
                ErrorCode.INVALID_INPUT, f"claim_id {claim.claim_id!r} appears twice in the "
                "file; claim ids must be unique", "claim_id")))
            continue
        seen.add(claim.claim_id)
        out.append(claim)
    return out

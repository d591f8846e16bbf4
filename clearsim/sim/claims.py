"""Claim files (SCENARIO.md): a JSON array of claims, each parsed or refused on its own.

A file that is not a JSON array is refused whole (CLAIMS_FILE_INVALID); a bad claim inside
it becomes a ``RejectedClaim`` naming its field, and the other claims are still answered.

``clearsim settle`` and ``clearsim run`` read claims here and nowhere else, so both accept
exactly the same claims: a claim the network's messages could not carry is refused here,
for both. The limits are the wire's (clearsim/schemas, clearsim.money.MAX_FEN): an amount,
a claim's total and every sum the cycles send (a day's totals, a month's clearing) stay
within 100,000,000,000.00 yuan (a node refuses more as absurd) when the file's claims
together do;
ids follow the national interface's lengths (psn_no, ipt_no and fixmedins_code 30
characters, med_list_codg 50); and a date leaves the run's calendar (reconciliation,
clearing and payback, which run on after the last claim) within what dates can hold.
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
from clearsim.money import MAX_FEN, format_fen, parse_fen
from clearsim.sim.files import read_user_file

_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

MAX_ID_CHARS = 30                      # psn_no, ipt_no, fixmedins_code: varchar(30)
MAX_CODE_CHARS = 50                    # med_list_codg: varchar(50)
MAX_ITEMS = 2000                       # charged lines of one claim: one message carries them
EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2199, 12, 31)
_NOT_IN_ID = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]")


def shown(value, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, for a message that quotes what it
    refuses (a megabyte-long value makes no readable line)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_id(value: str, name: str, limit: int = MAX_ID_CHARS,
             code: ErrorCode = ErrorCode.INVALID_INPUT) -> str:
    """An id as the wire carries it: at most ``limit`` characters, none of them a space or
    a control character. The value itself is not quoted (it may be a person's id)."""
    if len(value) > limit:
        raise ClearsimError(code, f"{name} is {len(value)} characters long; the interface "
                            f"carries at most {limit}", name)
    if _NOT_IN_ID.search(value):
        raise ClearsimError(code, f"{name} holds a space or a control character; an id "
                            "is one word of printable characters", name)
    return value


def check_amount(fen: int, name: str, what: str = "amount") -> int:
    if fen > MAX_FEN:
        raise ClearsimError(ErrorCode.INVALID_AMOUNT,
                            f"{what} {format_fen(fen)} is more than the interface carries "
                            f"(at most {format_fen(MAX_FEN)} yuan)", name)
    return fen


def check_date(day: date, name: str, code: ErrorCode = ErrorCode.INVALID_DATE) -> date:
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise ClearsimError(code, f"{name} {day.isoformat()} is outside "
                            f"{EARLIEST_DATE.isoformat()}..{LATEST_DATE.isoformat()}, the "
                            "dates a run's calendar can hold", name)
    return day


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
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ClearsimError(ErrorCode.INVALID_AMOUNT,
                            f"amount {shown(value)} must be a decimal string such as "
                            "\"12.50\"", field)
    if isinstance(value, str) and not _PLAIN_DECIMAL.fullmatch(value):
        raise ClearsimError(ErrorCode.INVALID_AMOUNT,
                            f"amount {shown(value)} is not a decimal such as \"12000.00\"",
                            field)
    if len(str(value).lstrip("-").split(".")[0].lstrip("0")) > 16:
        raise ClearsimError(ErrorCode.INVALID_AMOUNT,
                            f"amount {shown(value)} is more than the interface carries "
                            f"(at most {format_fen(MAX_FEN)} yuan)", field)
    try:
        return check_amount(parse_fen(value, field), field)
    except ArithmeticError:   # too many digits for Decimal to hold to the fen
        raise ClearsimError(ErrorCode.INVALID_AMOUNT, f"amount {shown(value)} is too large",
                            field) from None


def parse_claim(obj, index: int) -> Claim:
    claim_id = check_id(_field(obj, "claim_id", ""), "claim_id")
    day_text = _field(obj, "date", "", object)
    try:
        if not isinstance(day_text, str) or not _ISO_DATE.fullmatch(day_text):
            raise ValueError(day_text)
        day = date.fromisoformat(day_text)
    except ValueError:
        raise ClearsimError(ErrorCode.INVALID_DATE,
                            f"date {shown(day_text)} is not a date (YYYY-MM-DD)",
                            "date") from None
    check_date(day, "date")
    hospital = check_id(_field(obj, "hospital", ""), "hospital")
    person = _field(obj, "person", "", dict)
    insurance_text = _field(person, "insurance", "person", object)
    try:
        insurance = InsuranceType(insurance_text)
    except (ValueError, TypeError):
        raise ClearsimError(ErrorCode.INSURANCE_TYPE_UNKNOWN,
                            f"insurance {shown(insurance_text)} is not one of "
                            f"{', '.join(i.value for i in InsuranceType)}",
                            "person.insurance") from None
    filing_text = person.get("filing")
    try:
        filing = None if filing_text is None else FilingType(filing_text)
    except (ValueError, TypeError):
        raise ClearsimError(ErrorCode.FILING_TYPE_UNKNOWN,
                            f"filing {shown(filing_text)} is not one of "
                            f"{', '.join(f.value for f in FilingType)} or null",
                            "person.filing") from None
    person_id = check_id(_field(person, "id", "person"), "person.id")
    region = _field(person, "insuring_region", "person")
    if not re.fullmatch(r"[0-9]{6}", region):
        raise ClearsimError(ErrorCode.REGION_UNKNOWN,
                            f"insuring region {shown(region)} is not a 6-digit area code "
                            "(admdvs)", "person.insuring_region")
    raw_items = _field(obj, "items", "", list)
    if len(raw_items) > MAX_ITEMS:
        raise ClearsimError(ErrorCode.INVALID_INPUT,
                            f"a claim of {len(raw_items)} charged items; one claim carries "
                            f"at most {MAX_ITEMS}", "items")
    items = []
    for i, item in enumerate(raw_items):
        where = f"items[{i}]"
        code = check_id(_field(item, "code", where), f"{where}.code", MAX_CODE_CHARS)
        if "amount" not in item:
            raise ClearsimError(ErrorCode.INVALID_AMOUNT, f"{where}.amount is missing",
                                f"{where}.amount")
        items.append(ChargeItem(code, _amount(item["amount"], f"{where}.amount")))
    if not items:
        raise ClearsimError(ErrorCode.INVALID_INPUT, "a claim needs at least one item", "items")
    check_amount(sum(item.amount for item in items), "items", "the claim's total")
    return Claim(claim_id, day, hospital,
                 Person(person_id, region, insurance, filing), tuple(items))


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list) -> dict:
    """A JSON object, refused when a key appears twice (json would keep the last one
    silently)."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def load_claims(path) -> list[Claim | RejectedClaim]:
    path = Path(path)
    text = read_user_file(path, ErrorCode.CLAIMS_FILE_INVALID)
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise ClearsimError(ErrorCode.CLAIMS_FILE_INVALID,
                            f"{path}: JSON nested too deeply", "file") from None
    except json.JSONDecodeError as exc:
        raise ClearsimError(ErrorCode.CLAIMS_FILE_INVALID,
                            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: "
                            f"{exc.msg}", "file") from None
    except _DuplicateKey as exc:
        raise ClearsimError(ErrorCode.CLAIMS_FILE_INVALID,
                            f"{path}: key {shown(exc.args[0])} appears twice in one object; "
                            "which one is meant cannot be told", "file") from None
    except ValueError as exc:   # NaN or Infinity, or a number of thousands of digits
        raise ClearsimError(ErrorCode.CLAIMS_FILE_INVALID,
                            f"{path}: not valid JSON: {str(exc).split(';')[0]}",
                            "file") from None
    if not isinstance(data, list):
        raise ClearsimError(ErrorCode.CLAIMS_FILE_INVALID,
                            f"{path}: must be a JSON array of claims, not "
                            f"{type(data).__name__}", "file")
    return parse_claims(data)


def parse_claims(data: list) -> list[Claim | RejectedClaim]:
    """Claims in claims-file format (parsed JSON, or a workload's output), each parsed or
    refused on its own; a repeated claim id is refused, and so is a claim that would take
    the claims' charges together past what the interface carries (every sum a run sends,
    a day's totals or a month's clearing, is at most that)."""
    out: list[Claim | RejectedClaim] = []
    seen: set[str] = set()
    charges = 0
    for index, obj in enumerate(data):
        claim_id = obj.get("claim_id") if isinstance(obj, dict) else None
        label = f"#{index}"
        if isinstance(claim_id, str) and claim_id:
            try:
                label = check_id(claim_id, "claim_id")
            except ClearsimError:
                pass          # an id no line can show whole: the claim is named by place
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
        total = sum(item.amount for item in claim.items)
        if charges + total > MAX_FEN:
            out.append(RejectedClaim(label, Rejection(
                ErrorCode.INVALID_AMOUNT, f"with this claim the charges of the claims "
                f"together would pass {format_fen(MAX_FEN)} yuan, the most a sum the "
                "cycles send may carry", "items")))
            continue
        charges += total
        seen.add(claim.claim_id)
        out.append(claim)
    return out

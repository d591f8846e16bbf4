"""Claim files: a malformed file is refused whole; a bad claim is refused alone."""

from __future__ import annotations

import json

import pytest

from clearsim.errors import ClearsimError, ErrorCode
from clearsim.sim.claims import Claim, RejectedClaim, load_claims, parse_claim

GOOD = {"claim_id": "C-1", "date": "2019-03-02", "hospital": "H-BJ-3",
        "person": {"id": "P-1", "insuring_region": "360400", "insurance": "resident",
                   "filing": "referral"},
        "items": [{"code": "D100", "amount": "12000.00"}]}


def load(tmp_path, data) -> list:
    path = tmp_path / "claims.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return load_claims(path)


def variant(**changes) -> dict:
    claim = json.loads(json.dumps(GOOD))
    for path, value in changes.items():
        target = claim
        *parents, leaf = path.split("__")
        for p in parents:
            target = target[int(p)] if p.isdigit() else target[p]
        target[int(leaf) if leaf.isdigit() else leaf] = value
    return claim


def test_a_good_claim_is_parsed_to_fen():
    [claim] = load_claims_from(GOOD)
    assert isinstance(claim, Claim) and claim.items[0].amount == 1_200_000


def load_claims_from(*claims):
    import tempfile
    from pathlib import Path
    path = Path(tempfile.mkdtemp()) / "c.json"
    path.write_text(json.dumps(list(claims)))
    return load_claims(path)


@pytest.mark.parametrize("claim, code, field", [
    (variant(items__0__amount="-5.00"), ErrorCode.INVALID_AMOUNT, "items[0].amount"),
    (variant(items__0__amount="twelve"), ErrorCode.INVALID_AMOUNT, "items[0].amount"),
    (variant(items__0__amount=12.5), ErrorCode.INVALID_AMOUNT, "items[0].amount"),
    (variant(items__0__amount="1.005"), ErrorCode.INVALID_AMOUNT, "items[0].amount"),
    (variant(person__insurance="farmer"), ErrorCode.INSURANCE_TYPE_UNKNOWN, "person.insurance"),
    (variant(person__filing="holiday"), ErrorCode.FILING_TYPE_UNKNOWN, "person.filing"),
    (variant(date="2019-02-30"), ErrorCode.INVALID_DATE, "date"),
    (variant(hospital=""), ErrorCode.INVALID_INPUT, "hospital"),
    (variant(items=[]), ErrorCode.INVALID_INPUT, "items"),
    (variant(items__0__amount="1e3"), ErrorCode.INVALID_AMOUNT, "items[0].amount"),
    (variant(items__0__amount="1_000.00"), ErrorCode.INVALID_AMOUNT, "items[0].amount"),
    (variant(items__0__amount=" 12.00"), ErrorCode.INVALID_AMOUNT, "items[0].amount"),
    (variant(items__0__amount="NaN"), ErrorCode.INVALID_AMOUNT, "items[0].amount"),
    (variant(items__0__amount=True), ErrorCode.INVALID_AMOUNT, "items[0].amount"),
    (variant(items__0__amount=10 ** 40), ErrorCode.INVALID_AMOUNT, "items[0].amount"),
    (variant(items=[{"code": "D100"}]), ErrorCode.INVALID_AMOUNT, "items[0].amount"),
    (variant(items=[{"amount": "1.00"}]), ErrorCode.INVALID_INPUT, "items[0].code"),
    (variant(items=["D100"]), ErrorCode.INVALID_INPUT, "items[0]"),
    (variant(items="D100"), ErrorCode.INVALID_INPUT, "items"),
    (variant(person__insurance=["resident"]), ErrorCode.INSURANCE_TYPE_UNKNOWN,
     "person.insurance"),
    (variant(person__filing=3), ErrorCode.FILING_TYPE_UNKNOWN, "person.filing"),
    (variant(person__id=None), ErrorCode.INVALID_INPUT, "person.id"),
    (variant(person__insuring_region=360400), ErrorCode.INVALID_INPUT,
     "person.insuring_region"),
    (variant(person="P-1"), ErrorCode.INVALID_INPUT, "person"),
    (variant(date=20190302), ErrorCode.INVALID_DATE, "date"),
    (variant(date="2019-W10-1"), ErrorCode.INVALID_DATE, "date"),
    (variant(date=None), ErrorCode.INVALID_INPUT, "date"),
])
def test_a_bad_claim_is_refused_naming_the_field_and_the_others_are_answered(claim, code,
                                                                             field):
    other = variant(claim_id="C-2")
    bad, good = load_claims_from(claim, other)
    assert isinstance(bad, RejectedClaim) and bad.claim_id == "C-1"
    assert (bad.rejection.code, bad.rejection.field) == (code, field)
    assert isinstance(good, Claim) and good.claim_id == "C-2"


def test_a_duplicate_claim_id_is_refused():
    first, second = load_claims_from(GOOD, GOOD)
    assert isinstance(first, Claim) and isinstance(second, RejectedClaim)
    assert second.rejection.field == "claim_id"


@pytest.mark.parametrize("text", ['{"claim_id": "C-1"}', "[{", "not json"])
def test_a_malformed_file_is_refused_whole(tmp_path, text):
    with pytest.raises(ClearsimError) as err:
        load(tmp_path, text)
    assert err.value.code is ErrorCode.CLAIMS_FILE_INVALID
    assert "claims.json" in err.value.rejection.message


def test_no_filing_is_none_and_amounts_may_be_json_integers():
    [claim] = load_claims_from(variant(person__filing=None, items__0__amount=12000))
    assert claim.person.filing is None and claim.items[0].amount == 1_200_000


def test_an_element_that_is_not_an_object_is_refused_by_position():
    first, second = load_claims_from([1, 2], GOOD)
    assert isinstance(first, RejectedClaim) and first.claim_id == "#0"
    assert (first.rejection.code, first.rejection.field) == (ErrorCode.INVALID_INPUT, "claim")
    assert isinstance(second, Claim)


def test_a_json_error_names_line_and_column(tmp_path):
    with pytest.raises(ClearsimError) as err:
        load(tmp_path, '[\n  {"claim_id": "C-1",}\n]')
    assert "claims.json: not valid JSON at line 2 column" in err.value.rejection.message


@pytest.mark.parametrize("raw, what", [(b"[\xff]", "not UTF-8"),
                                       (b"[" * 100_000, "nested too deeply")])
def test_unreadable_json_is_refused_whole(tmp_path, raw, what):
    path = tmp_path / "claims.json"
    path.write_bytes(raw)
    with pytest.raises(ClearsimError) as err:
        load_claims(path)
    assert err.value.code is ErrorCode.CLAIMS_FILE_INVALID and what in str(err.value)


def test_parse_claim_raises_for_one_bad_claim():
    with pytest.raises(ClearsimError) as err:
        parse_claim(variant(items__0__amount="-1.00"), 0)
    assert err.value.rejection.field == "items[0].amount" and "negative" in str(err.value)

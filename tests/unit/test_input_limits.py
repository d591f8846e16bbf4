"""What the claims and scenario loaders refuse because the network's messages could not
carry it (so `clearsim settle` and `clearsim run` accept the same inputs), and odd files
refused whole with the file's code instead of a traceback."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from clearsim.errors import ClearsimError, ErrorCode
from clearsim.money import MAX_FEN
from clearsim.sim.claims import (LATEST_DATE, MAX_ITEMS, Claim, RejectedClaim, load_claims,
                                 parse_claims)
from clearsim.sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
DEMO = (ROOT / "scenarios" / "demo.toml").read_text()
GOOD = {"claim_id": "C-1", "date": "2019-03-02", "hospital": "H-BJ-3",
        "person": {"id": "P-1", "insuring_region": "360400", "insurance": "resident",
                   "filing": "referral"},
        "items": [{"code": "D100", "amount": "12000.00"}]}
MAX_YUAN = "100000000000.00"          # clearsim.money.MAX_FEN


def claim(**changes) -> dict:
    out = json.loads(json.dumps(GOOD))
    for key, value in changes.items():
        if key.startswith("person_"):
            out["person"][key.removeprefix("person_")] = value
        else:
            out[key] = value
    return out


def items(*amounts) -> list[dict]:
    return [{"code": "D100", "amount": a} for a in amounts]


@pytest.mark.parametrize("bad, code, field", [
    (claim(items=items("10000000000000000.00")), ErrorCode.INVALID_AMOUNT, "items[0].amount"),
    (claim(items=items(10 ** 16)), ErrorCode.INVALID_AMOUNT, "items[0].amount"),
    (claim(items=items(MAX_YUAN, "0.01")), ErrorCode.INVALID_AMOUNT, "items"),
    (claim(date=f"{LATEST_DATE.year + 1}-01-01"), ErrorCode.INVALID_DATE, "date"),
    (claim(date="9999-12-31"), ErrorCode.INVALID_DATE, "date"),
    (claim(date="0001-01-01"), ErrorCode.INVALID_DATE, "date"),
    (claim(claim_id="C" * 31), ErrorCode.INVALID_INPUT, "claim_id"),
    (claim(claim_id="C-1\nC-2"), ErrorCode.INVALID_INPUT, "claim_id"),
    (claim(person_id="P" * 31), ErrorCode.INVALID_INPUT, "person.id"),
    (claim(person_id="P 1"), ErrorCode.INVALID_INPUT, "person.id"),
    (claim(hospital="H" * 31), ErrorCode.INVALID_INPUT, "hospital"),
    (claim(items=[{"code": "D" * 51, "amount": "1.00"}]), ErrorCode.INVALID_INPUT,
     "items[0].code"),
    (claim(items=items(*["1.00"] * (MAX_ITEMS + 1))), ErrorCode.INVALID_INPUT, "items"),
    (claim(person_insuring_region="36040"), ErrorCode.REGION_UNKNOWN,
     "person.insuring_region"),
    (claim(person_filing={}), ErrorCode.FILING_TYPE_UNKNOWN, "person.filing"),
    (claim(person_insurance=[]), ErrorCode.INSURANCE_TYPE_UNKNOWN, "person.insurance"),
    (claim(items=items(None)), ErrorCode.INVALID_AMOUNT, "items[0].amount"),
])
def test_a_claim_the_wire_cannot_carry_is_refused_alone(bad, code, field):
    refused, good = parse_claims([bad, claim(claim_id="C-2")])
    assert isinstance(refused, RejectedClaim) and isinstance(good, Claim)
    assert (refused.rejection.code, refused.rejection.field) == (code, field)
    assert len(refused.rejection.message) < 200          # one readable line


def test_the_largest_amounts_the_wire_carries_are_accepted():
    [one] = parse_claims([claim(items=items(MAX_YUAN), date=LATEST_DATE.isoformat(),
                                claim_id="C" * 30)])
    assert isinstance(one, Claim) and one.items[0].amount == MAX_FEN


def test_claims_whose_charges_together_pass_the_wire_limit_are_refused_from_there():
    half = "60000000000.00"        # 60 billion yuan: two pass MAX_FEN
    first, second, third = parse_claims([claim(items=items(half)),
                                         claim(claim_id="C-2", items=items(half)),
                                         claim(claim_id="C-3")])
    assert isinstance(first, Claim) and isinstance(third, Claim)
    assert isinstance(second, RejectedClaim)
    assert second.rejection.code is ErrorCode.INVALID_AMOUNT


def test_a_claim_id_no_line_can_show_is_named_by_its_place():
    [refused] = parse_claims([claim(claim_id="C" * 5000)])
    assert refused.claim_id == "#0"


def test_a_refusal_does_not_quote_a_person_id():
    [refused] = parse_claims([claim(person_id="P-SECRET-" + "9" * 40)])
    assert "SECRET" not in refused.rejection.message


@pytest.mark.parametrize("raw, what", [
    (b"", "not valid JSON"),
    (b"[" * 100_000, "nested too deeply"),
    (b"[1" + b"0" * 5000 + b"]", "digits"),
    (b'[{"claim_id": "A", "claim_id": "B"}]', "appears twice"),
    (b'[{"amount": NaN}]', "NaN"),
    (b'[{"amount": -Infinity}]', "Infinity"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8"),
    (b'{"claims": []}', "must be a JSON array"),
])
def test_an_odd_claims_file_is_refused_whole(tmp_path, raw, what):
    path = tmp_path / "claims.json"
    path.write_bytes(raw)
    with pytest.raises(ClearsimError) as err:
        load_claims(path)
    assert err.value.code is ErrorCode.CLAIMS_FILE_INVALID and what in str(err.value)


def test_a_directory_or_a_missing_file_is_refused(tmp_path):
    for path, what in ((tmp_path, "is a directory"), (tmp_path / "nothing.json", "cannot")):
        with pytest.raises(ClearsimError) as err:
            load_claims(path)
        assert err.value.code is ErrorCode.CLAIMS_FILE_INVALID and what in str(err.value)


def test_a_byte_order_mark_is_read_past(tmp_path):
    path = tmp_path / "claims.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([GOOD]).encode())
    [one] = load_claims(path)
    assert isinstance(one, Claim)
    scenario = tmp_path / "s.toml"
    scenario.write_bytes(b"\xef\xbb\xbf" + DEMO.encode())
    (tmp_path / "demo-claims.json").write_text("[]")
    assert len(load_scenario(scenario).regions) == 4


def test_a_named_pipe_is_read_like_a_file(tmp_path):
    pipe = tmp_path / "claims.json"
    os.mkfifo(pipe)

    def write() -> None:                 # the other end: `--claims <(make-claims)`
        with open(pipe, "w") as fh:
            fh.write(json.dumps([GOOD]))
    writer = threading.Thread(target=write)
    writer.start()
    try:
        [one] = load_claims(pipe)
    finally:
        writer.join()
    assert isinstance(one, Claim)


def scenario_refused(tmp_path, text: str) -> ClearsimError:
    path = tmp_path / "s.toml"
    path.write_text(text)
    (tmp_path / "demo-claims.json").write_text("[]")
    with pytest.raises(ClearsimError) as err:
        load_scenario(path)
    assert err.value.code is ErrorCode.SCENARIO_INVALID
    return err.value


@pytest.mark.parametrize("old, new, field", [
    ('annual_cap = "150000.00"', 'annual_cap = "10000000000000000.00"',
     "region[0].policy.resident.annual_cap"),
    ("version = 3", "version = 2147483648", "region[0].policy.version"),
    ('start = "2019-03-01"', 'start = "2200-01-01"', "sim.start"),
    ("days = 31", "days = 100000", "sim.days"),
    ('id = "H-JJ-2"', 'id = "' + "H" * 31 + '"', "hospital[3].id"),
    ('id = "H-JJ-2"', 'id = "H JJ 2"', "hospital[3].id"),
    ('{ code = "D100"', '{ code = "' + "D" * 51 + '"', "region[0].catalog.items[0].code"),
])
def test_a_scenario_value_the_wire_cannot_carry_is_refused(tmp_path, old, new, field):
    assert old in DEMO
    err = scenario_refused(tmp_path, DEMO.replace(old, new, 1))
    assert err.rejection.field == field


def test_a_working_day_count_past_a_year_is_refused(tmp_path):
    err = scenario_refused(tmp_path, DEMO + "\n[clearing]\nnotice_working_days = 100000\n")
    assert err.rejection.field == "clearing.notice_working_days"


@pytest.mark.parametrize("text, what", [
    ("a = " + "[" * 100_000, "nested too deeply"),
    ("[sim]\nseed = 1" + "0" * 5000, "digits"),
    ("", "region: is required"),
])
def test_an_odd_scenario_file_is_refused_whole(tmp_path, text, what):
    assert what in str(scenario_refused(tmp_path, text))


def test_the_scenario_knows_the_files_it_read():
    scenario = load_scenario(ROOT / "scenarios" / "worked-example.toml")
    assert [p.name for p in scenario.files] == ["worked-example.toml",
                                                "worked-example-beijing-catalog.csv"]

"""The workload generator: reproducible for a seed, shaped by its keys, validated."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from clearsim.errors import ClearsimError
from clearsim.sim.claims import Claim, parse_claims
from clearsim.sim.scenario import load_scenario
from clearsim.sim.workload import generate

ROOT = Path(__file__).resolve().parents[2]
DEMO = load_scenario(ROOT / "scenarios" / "demo.toml")


def claims(days=60, workload=None):
    return generate(workload or DEMO.workload, DEMO, date(2019, 3, 1), days)


def test_the_same_seed_gives_the_same_claims_and_another_seed_others():
    assert claims() == claims()
    assert claims() != claims(workload=replace(DEMO.workload, seed=1))


def test_generated_claims_are_valid_claims_in_the_file_format():
    parsed = parse_claims(claims())
    assert parsed and all(isinstance(c, Claim) for c in parsed)
    assert len({c.claim_id for c in parsed}) == len(parsed)
    assert min(c.date for c in parsed) >= date(2019, 3, 1)
    assert max(c.date for c in parsed) <= date(2019, 4, 29)


def test_arrivals_follow_the_declared_rates_and_shares():
    generated = claims(days=365)
    # Declared means: 1.5 + 0.8 + 0.4 + 0.6 + 1.0 = 4.3 admissions a day.
    assert 4.0 * 365 < len(generated) < 4.6 * 365
    to_beijing = [c for c in generated if c["person"]["insuring_region"] == "360400"
                  and c["hospital"].startswith("H-BJ")]
    assert 1.3 * 365 < len(to_beijing) < 1.7 * 365
    filings = Counter(c["person"]["filing"] for c in to_beijing)
    assert 0.45 < filings["referral"] / len(to_beijing) < 0.65
    in_region = [c for c in generated if c["person"]["insuring_region"] == "110000"
                 and c["hospital"].startswith("H-BJ")]
    assert {c["person"]["filing"] for c in in_region} == {None}


def test_a_person_keeps_one_insurance_type():
    seen: dict[str, set] = {}
    for c in claims(days=365):
        seen.setdefault(c["person"]["id"], set()).add(c["person"]["insurance"])
    assert all(len(types) == 1 for types in seen.values())
    assert any(len([1 for c in claims(days=365) if c["person"]["id"] == p]) > 1 for p in seen)


def test_items_come_from_the_mix_of_the_hospital_level_within_their_ranges():
    levels = {h.id: h.level for h in DEMO.hospitals.values()}
    mixes = {level: {m.code: m for m in mix} for level, mix in DEMO.workload.mixes.items()}
    for c in claims():
        for item in c["items"]:
            mix = mixes[levels[c["hospital"]]][item["code"]]
            fen = int(item["amount"].replace(".", ""))
            assert mix.low <= fen <= mix.high


WORKLOAD = (ROOT / "scenarios" / "demo.toml").read_text()


@pytest.mark.parametrize("old, new, keypath", [
    ('from = "360400"\nto = "110000"', 'from = "999999"\nto = "110000"', "workload.flow[0].from"),
    ('filing = { referral = "0.5", temporary = "0.3", none = "0.2" }',
     'filing = { referral = "0.5", temporary = "0.3", none = "0.3" }', "workload.flow[1].filing"),
    ('filing = { referral = "0.5", temporary = "0.3", none = "0.2" }',
     'filing = { referral = "0.5", holiday = "0.3", none = "0.2" }',
     "workload.flow[1].filing.holiday"),
    ('admissions_per_day = "0.8"', 'admissions_per_day = "-1"',
     "workload.flow[1].admissions_per_day"),
    ('length_of_stay = { min = 2, max = 12 }', 'length_of_stay = { min = 5, max = 2 }',
     "workload.length_of_stay.max"),
    ('{ code = "S500", weight = "1", min = "100.00", max = "300.00" }',
     '{ code = "S500", weight = "1", min = "100.00", max = "30.00" }',
     "workload.item_mix[0].items[3].max"),
    ("seed = 2019\n", "seed = 2019\nrate = 3\n", "workload.rate"),
    ('"440100" = { persons = 3000,', '"440100" = { persons = 0,', "workload.population.440100.persons"),
    ('insurance = { resident = "0.5", employee = "0.5" } }',
     'insurance = { resident = "0.5", employee = "0.6" } }', "workload.population.440100.insurance"),
])
def test_each_workload_mistake_names_its_key_path(tmp_path, old, new, keypath):
    assert old in WORKLOAD
    path = tmp_path / "s.toml"
    path.write_text(WORKLOAD.replace(old, new, 1))
    (tmp_path / "demo-claims.json").write_text("[]")
    with pytest.raises(ClearsimError) as err:
        load_scenario(path)
    assert err.value.rejection.field == keypath

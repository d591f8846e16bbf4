"""Scenario validation: refused before anything runs, naming file, key path and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearsim.errors import ClearsimError, ErrorCode
from clearsim.money import Ratio
from clearsim.sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
GOOD = (ROOT / "scenarios" / "worked-example.toml").read_text()


def load(tmp_path, text: str):
    path = tmp_path / "s.toml"
    path.write_text(text)
    (tmp_path / "worked-example-beijing-catalog.csv").write_text(
        (ROOT / "scenarios" / "worked-example-beijing-catalog.csv").read_text())
    return load_scenario(path)


def refused(tmp_path, text: str) -> str:
    with pytest.raises(ClearsimError) as err:
        load(tmp_path, text)
    assert err.value.code is ErrorCode.SCENARIO_INVALID
    assert str(tmp_path / "s.toml") in err.value.rejection.message
    return err.value.rejection.field


def test_the_worked_example_loads_with_inline_and_csv_catalogs(tmp_path):
    s = load(tmp_path, GOOD)
    assert set(s.regions) == {"360400", "110000"}
    assert s.regions["110000"].catalog.get("T300").b_selfpay_share == Ratio.parse("0.10")
    assert s.regions["360400"].policy.version == 1          # the default
    assert s.regions["110000"].policy is None
    assert s.hospitals["H-BJ-3"].level == 3


def test_the_demo_loads_with_its_policy_versions_and_claims_file():
    s = load_scenario(ROOT / "scenarios" / "demo.toml")
    assert s.regions["360400"].policy.version == 3
    assert s.sim.claims == ROOT / "scenarios" / "demo-claims.json"


REFERRED = "region[0].policy.resident.cross_region.referred"


@pytest.mark.parametrize("old, new, keypath, what", [
    ("[[hospital]]", "[[hospital]]\nbeds = 3", "hospital[0].beds", "unknown key"),
    ("[[region]]", "[sim]\nspeed = 2\n\n[[region]]", "sim.speed", "unknown key"),
    ('ratio = "0.50"', 'ratio = "1.50"', f"{REFERRED}.ratio", "between 0 and 1"),
    ('ratio = "0.50"', 'ratio = "-0.50"', f"{REFERRED}.ratio", "between 0 and 1"),
    ('ratio = "0.50"', 'ratio = "half"', f"{REFERRED}.ratio", "decimal string"),
    ('ratio = "0.50"', 'ratio = 0.5', f"{REFERRED}.ratio", "decimal string"),
    ('ratio = "0.50"', 'ratio = "5e-1"', f"{REFERRED}.ratio", "decimal string"),
    ('ratio = "0.50"', 'ratio = "0.5000001"', f"{REFERRED}.ratio", "more than 6 decimals"),
    ('annual_cap = "150000.00"', 'annual_cap = "150000.001"',
     "region[0].policy.resident.annual_cap", "more than two decimals"),
    ('annual_cap = "150000.00"', 'annual_cap = "1e40"',
     "region[0].policy.resident.annual_cap", "decimal string"),
    ('deductible = "600.00", ratio = "0.50"', 'deductible = "-1.00", ratio = "0.50"',
     f"{REFERRED}.deductible", "negative"),
    ("[region.policy.resident]", "[region.policy]\nversion = 0\n[region.policy.resident]",
     "region[0].policy.version", "at least 1"),
    ("[region.policy.resident]", "[region.policy.farmer]\nannual_cap = \"1.00\"\n"
     "[region.policy.resident]", "region[0].policy.farmer", "unknown key"),
    ('region = "110000"', 'region = "999999"', "hospital[0].region", "unknown region"),
    ("level = 3", "level = 4", "hospital[0].level", "1, 2 or 3"),
    ('code = "110000"', 'code = "360400"', "region[1].code", "duplicate region code"),
    ('code = "110000"', 'code = "11000"', "region[1].code", "6-digit"),
    ('{ code = "S500", name = "private ward", class = "C" }',
     '{ code = "D100", name = "again", class = "C" }', "region[0].catalog.items[2].code",
     "duplicate catalog code"),
    ('class = "B", b_selfpay_share = "0.10"', 'class = "B"',
     "region[0].catalog.items[1].b_selfpay_share", "required for a class B item"),
    ('class = "A" }', 'class = "A", b_selfpay_share = "0.10" }',
     "region[0].catalog.items[0].b_selfpay_share", "class B only"),
    ('class = "C" }', 'class = "D" }', "region[0].catalog.items[2].class", "not A, B or C"),
    ('cross_region.not_referred = { deductible = "800.00", ratio = "0.40" }\n', "",
     "region[0].policy.resident.cross_region.not_referred", "is required"),
    ('csv = "worked-example-beijing-catalog.csv"', 'csv = "nowhere.csv"',
     "region[1].catalog.csv", "cannot read"),
    ('csv = "worked', 'items = []\ncsv = "worked', "region[1].catalog", "exactly one of"),
])
def test_each_mistake_is_refused_with_its_key_path(tmp_path, old, new, keypath, what):
    assert old in GOOD
    message = refused_message(tmp_path, GOOD.replace(old, new, 1))
    assert f"{tmp_path / 's.toml'}: {keypath}: " in message and what in message


def refused_message(tmp_path, text: str) -> str:
    with pytest.raises(ClearsimError) as err:
        load(tmp_path, text)
    assert err.value.code is ErrorCode.SCENARIO_INVALID
    return err.value.rejection.message


def test_a_policy_version_is_kept(tmp_path):
    s = load(tmp_path, GOOD.replace("[region.policy.resident]",
                                    "[region.policy]\nversion = 7\n\n[region.policy.resident]"))
    assert s.regions["360400"].policy.version == 7


@pytest.mark.parametrize("csv_text, keypath, what", [
    ("code,name,class,b_selfpay_share\nD100,x,A,\nT300,y,b,0.10\n",
     "region[1].catalog.csv[1].class", "not A, B or C (worked-example-beijing-catalog.csv line 3)"),
    ("code,name,class,b_selfpay_share\nD100,x,A,\nD100,y,C,\n",
     "region[1].catalog.csv[1].code", "duplicate catalog code 'D100' (worked-example-beijing"),
    ("code,name,class,b_selfpay_share\nT300,y,B,\n",
     "region[1].catalog.csv[0].b_selfpay_share", "required for a class B item"),
    ("code,name,class,b_selfpay_share\nT300,y,B,0.10,extra\n",
     "region[1].catalog.csv[0]", "line 2: more cells than the header's columns"),
    ("code,name,grade\nD100,x,A\n", "region[1].catalog.csv[0].grade", "unknown key"),
])
def test_a_csv_catalog_names_the_row_and_its_line(tmp_path, csv_text, keypath, what):
    load(tmp_path, GOOD)   # writes the CSV beside the scenario; overwrite it below
    (tmp_path / "worked-example-beijing-catalog.csv").write_text(csv_text)
    with pytest.raises(ClearsimError) as err:
        load_scenario(tmp_path / "s.toml")
    assert err.value.rejection.field == keypath
    assert f": {keypath}: " in err.value.rejection.message and what in err.value.rejection.message


def test_a_duplicate_hospital_is_refused(tmp_path):
    text = GOOD + '\n[[hospital]]\nid = "H-BJ-3"\nregion = "110000"\nlevel = 2\n'
    assert refused(tmp_path, text) == "hospital[1].id"


def test_hospitals_must_be_an_array_of_tables(tmp_path):
    text = GOOD.split("[[hospital]]")[0].replace("[[region]]", "hospital = 3\n\n[[region]]", 1)
    assert refused(tmp_path, text) == "hospital"


def test_not_toml_at_all(tmp_path):
    assert refused(tmp_path, "[[region]\n") == "file"


def test_not_utf8(tmp_path):
    path = tmp_path / "s.toml"
    path.write_bytes(b"[[region]]\nname = \"\xff\"\n")
    with pytest.raises(ClearsimError) as err:
        load_scenario(path)
    assert err.value.code is ErrorCode.SCENARIO_INVALID and "not UTF-8" in str(err.value)


def test_sim_claims_is_resolved_beside_the_scenario(tmp_path):
    s = load(tmp_path, '[sim]\nseed = 5\nstart = "2019-02-01"\ndays = 10\n'
                       'claims = "c/claims.json"\n\n' + GOOD)
    assert (s.sim.seed, s.sim.start.isoformat(), s.sim.days) == (5, "2019-02-01", 10)
    assert s.sim.claims == tmp_path / "c" / "claims.json"

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


@pytest.mark.parametrize("change, keypath", [
    (("[[hospital]]", "[[hospital]]\nbeds = 3"), "hospital[0].beds"),
    (('ratio = "0.50"', 'ratio = "1.50"'), "region[0].policy.resident.cross_region.referred.ratio"),
    (('ratio = "0.50"', 'ratio = "half"'), "region[0].policy.resident.cross_region.referred.ratio"),
    (('ratio = "0.50"', 'ratio = 0.5'), "region[0].policy.resident.cross_region.referred.ratio"),
    (('annual_cap = "150000.00"', 'annual_cap = "150000.001"'), "region[0].policy.resident.annual_cap"),
    (('deductible = "600.00", ratio = "0.50"', 'deductible = "-1.00", ratio = "0.50"'),
     "region[0].policy.resident.cross_region.referred.deductible"),
    (('region = "110000"', 'region = "999999"'), "hospital[0].region"),
    (('level = 3', 'level = 4'), "hospital[0].level"),
    (('code = "110000"', 'code = "360400"'), "region[1].code"),
    (('code = "110000"', 'code = "11000"'), "region[1].code"),
    (('{ code = "S500", name = "private ward", class = "C" }',
      '{ code = "D100", name = "again", class = "C" }'), "region[0].catalog.items[2].code"),
    (('class = "B", b_selfpay_share = "0.10"', 'class = "B"'),
     "region[0].catalog.items[1].b_selfpay_share"),
    (('class = "C" }', 'class = "D" }'), "region[0].catalog.items[2].class"),
    (('cross_region.not_referred = { deductible = "800.00", ratio = "0.40" }\n', ''),
     "region[0].policy.resident.cross_region.not_referred"),
])
def test_each_mistake_is_refused_with_its_key_path(tmp_path, change, keypath):
    old, new = change
    assert old in GOOD
    assert refused(tmp_path, GOOD.replace(old, new, 1)) == keypath


def test_a_duplicate_hospital_is_refused(tmp_path):
    text = GOOD + '\n[[hospital]]\nid = "H-BJ-3"\nregion = "110000"\nlevel = 2\n'
    assert refused(tmp_path, text) == "hospital[1].id"


def test_not_toml_at_all(tmp_path):
    assert refused(tmp_path, "[[region]\n") == "file"

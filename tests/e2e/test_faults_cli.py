"""`clearsim faults` lists the catalogue; `clearsim run --fault` refuses a bad fault before
anything runs, and a run with a fault writes the fault report."""

from __future__ import annotations

import csv
import json

from clearsim.faults import FAMILIES, KINDS
from tests.e2e.test_run_cli import DEMO, clearsim


def test_the_catalogue_lists_every_kind_with_an_example():
    done = clearsim("faults")
    assert done.returncode == 0, done.stderr
    for family in FAMILIES:
        assert f"== {family}" in done.stdout
    for kind in KINDS.values():
        assert f"  {kind.name}: {kind.summary}" in done.stdout
        assert f"--fault {kind.example}" in done.stdout
    listed = json.loads(clearsim("faults", "--json").stdout)
    assert [k["kind"] for k in listed] == list(KINDS)
    assert {"name": "rate", "type": "decimal", "default": "1"}.items() <= next(
        p for p in listed[0]["params"] if p["name"] == "rate").items()
    assert clearsim("faults", "nosuch").returncode == 2


def test_a_bad_fault_stops_the_run_before_it_starts(tmp_path):
    done = clearsim("run", str(DEMO), "--fault", "pause:node=region-000000",
                    "--out", str(tmp_path))
    assert done.returncode == 2
    assert "SCENARIO_INVALID" in done.stderr and "no node 'region-000000'" in done.stderr
    assert not (tmp_path / "summary.json").exists()


def test_a_paused_hub_holds_claims_up_and_loses_nothing(tmp_path):
    done = clearsim("run", str(DEMO), "--fault",
                    "pause:node=hub,from=2019-03-04,until=2019-03-09,id=hub-upgrade",
                    "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "faults.json").read_text())
    assert [f["fault"] for f in report] == ["hub-upgrade"]
    held = report[0]
    # Claims of the days the hub was down waited for it and then settled as offline.
    assert held["claims_struck"] >= 1
    assert set(held["outcomes"]) == {"no effect"}
    assert held["money_finally_wrong"] == "0.00"
    rows = list(csv.DictReader((tmp_path / "faults.csv").open()))
    assert {r["claim_id"] for r in rows} == {c["claim_id"] for c in held["claims"]}
    assert all("2019-03-04" <= r["injected_on"] < "2019-03-09" for r in rows)
    assert json.loads((tmp_path / "delivery.json").read_text())["ok"] is True
    assert "hub-upgrade: pause on hub 2019-03-04..2019-03-09" in done.stdout
    assert "delivery check: passed" in done.stdout


def test_with_repair_off_the_report_names_exactly_the_claims_settled_wrong(tmp_path):
    from clearsim.money import format_fen, parse_fen
    from tests.e2e.test_run_cli import ROOT
    scenario = ROOT / "scenarios" / "faults" / "parameter.toml"
    done = clearsim("run", str(scenario), "--no-repair", "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    offline = {a["claim_id"]: a for a in json.loads(clearsim(
        "settle", "--scenario", str(scenario), "--claims",
        str(ROOT / "scenarios" / "demo-claims.json"), "--json").stdout)}
    ran = {c["claim_id"]: c for c in json.loads((tmp_path / "claims.json").read_text())}
    differ = {cid: abs(parse_fen(c["fund_pay"]) - parse_fen(offline[cid]["fund_pay"]))
              for cid, c in ran.items() if c["status"] == "direct"
              and c["fund_pay"] != offline[cid]["fund_pay"]}
    assert differ, "the fault should have left some claim wrong"
    [fault] = json.loads((tmp_path / "faults.json").read_text())
    wrong = {c["claim_id"]: parse_fen(c["wrong_by"]) for c in fault["claims"]
             if c["outcome"] == "settled wrong"}
    assert wrong == differ
    assert fault["money_finally_wrong"] == format_fen(sum(differ.values()))
    assert fault["repair"] is False and "repair OFF" in done.stdout
    # With repair on, the same fault leaves nothing wrong and says how it was repaired.
    again = tmp_path / "repaired"
    assert clearsim("run", str(scenario), "--out", str(again)).returncode == 0
    [fault] = json.loads((again / "faults.json").read_text())
    assert fault["money_finally_wrong"] == "0.00"
    assert set(fault["outcomes"]) <= {"reversed and re-settled", "no effect"}
    assert fault["outcomes"].get("reversed and re-settled")
    assert set(fault["codes"]) == {"POLICY_PARAMETER_MISMATCH"}

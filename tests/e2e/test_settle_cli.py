"""`clearsim settle` as an integrator runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCEN = ROOT / "scenarios"


def settle(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clearsim.cli", "settle", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_the_worked_example_prints_7950_and_12050():
    done = settle("--scenario", str(SCEN / "worked-example.toml"),
                  "--claims", str(SCEN / "worked-example-claims.json"))
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("C-001"))
    assert "7950.00" in row.split() and "12050.00" in row.split()


def test_the_json_answer_has_the_contracted_shape():
    done = settle("--scenario", str(SCEN / "worked-example.toml"),
                  "--claims", str(SCEN / "worked-example-claims.json"), "--json")
    [answer] = json.loads(done.stdout)
    assert {k: answer[k] for k in ("claim_id", "status", "total", "in_scope", "deductible",
                                   "ratio", "fund_pay", "personal_pay", "tier", "error")} == {
        "claim_id": "C-001", "status": "direct", "total": "20000.00", "in_scope": "16500.00",
        "deductible": "600.00", "ratio": "0.50", "fund_pay": "7950.00",
        "personal_pay": "12050.00", "tier": "cross_region.referred", "error": None}


def test_bad_claims_are_answered_in_order_with_codes(tmp_path):
    claims = json.loads((SCEN / "worked-example-claims.json").read_text())
    bad = json.loads(json.dumps(claims[0]))
    bad["claim_id"], bad["items"][0]["amount"] = "C-BAD", "-1.00"
    unknown = json.loads(json.dumps(claims[0]))
    unknown["claim_id"], unknown["items"][0]["code"] = "C-MAP", "ZZZ"
    path = tmp_path / "claims.json"
    path.write_text(json.dumps([bad, claims[0], unknown]))
    done = settle("--scenario", str(SCEN / "worked-example.toml"), "--claims", str(path),
                  "--json")
    assert done.returncode == 0
    answers = json.loads(done.stdout)
    assert [a["claim_id"] for a in answers] == ["C-BAD", "C-001", "C-MAP"]
    assert answers[0]["error"]["code"] == "INVALID_AMOUNT"
    assert answers[0]["error"]["field"] == "items[0].amount"
    assert answers[1]["fund_pay"] == "7950.00"
    assert (answers[2]["status"], answers[2]["error"]["code"]) == ("rejected",
                                                                   "CATALOG_CODE_UNKNOWN")


def test_a_malformed_claims_file_exits_2_with_a_clear_message(tmp_path):
    path = tmp_path / "claims.json"
    path.write_text("[{")
    done = settle("--scenario", str(SCEN / "worked-example.toml"), "--claims", str(path))
    assert done.returncode == 2
    assert done.stderr.startswith("clearsim: CLAIMS_FILE_INVALID: ")
    assert "line 1" in done.stderr


def test_an_invalid_scenario_exits_2_naming_the_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text((SCEN / "worked-example.toml").read_text().replace('"0.50"', '"5.0"'))
    (tmp_path / "worked-example-beijing-catalog.csv").write_text(
        (SCEN / "worked-example-beijing-catalog.csv").read_text())
    done = settle("--scenario", str(path), "--claims", str(SCEN / "worked-example-claims.json"))
    assert done.returncode == 2
    assert "SCENARIO_INVALID" in done.stderr
    assert "region[0].policy.resident.cross_region.referred.ratio" in done.stderr

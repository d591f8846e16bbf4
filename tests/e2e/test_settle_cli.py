"""`clearsim settle` as an integrator runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCEN = ROOT / "scenarios"


def settle(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "testbed.cli", "settle", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_the_worked_example_prints_7950_and_12050():
    done = settle("--scenario", str(SCEN / "worked-example.toml"),
                  "--claims", str(SCEN / "worked-example-claims.json"))
    assert done.returncode == 0, done.stderr
    header, rule, row, totals = done.stdout.splitlines()
    assert header.split() == ["claim", "status", "total", "in", "scope", "deductible", "ratio",
                              "fund", "pay", "personal", "tier"]
    assert set(rule) == {"-", " "}
    assert row.split() == ["C-001", "direct", "20000.00", "16500.00", "600.00", "0.50",
                           "7950.00", "12050.00", "cross_region.referred"]
    assert row.index("7950.00") + len("7950.00") == header.index("fund pay") + len("fund pay")
    assert totals == ("1 claim: 1 direct, 0 manual, 0 rejected; settled (direct and manual): "
                      "total 20000.00, fund pay 7950.00, personal pay 12050.00")


def test_the_table_explains_rejections_under_their_row(tmp_path):
    claims = json.loads((SCEN / "worked-example-claims.json").read_text())
    unknown = json.loads(json.dumps(claims[0]))
    unknown["claim_id"], unknown["items"][1]["code"] = "C-MAP", "ZZZ"
    manual = json.loads(json.dumps(claims[0]))
    manual["claim_id"], manual["person"]["filing"] = "C-MAN", None
    path = tmp_path / "claims.json"
    path.write_text(json.dumps([unknown, manual]))
    done = settle("--scenario", str(SCEN / "worked-example.toml"), "--claims", str(path))
    lines = done.stdout.splitlines()
    assert lines[2].split()[:3] == ["C-MAP", "rejected", "20000.00"]
    assert lines[3].strip().startswith("CATALOG_CODE_UNKNOWN (items[1].code): item code 'ZZZ'")
    # manual: Jiujiang's catalog knows all three items as Beijing does (A, B 10%, C):
    # (16,500 - 800) x 0.40 = 6,280.00
    assert lines[4].split()[:2] == ["C-MAN", "manual"] and "6280.00" in lines[4].split()
    assert lines[5].startswith("2 claims: 0 direct, 1 manual, 1 rejected;")


def test_the_json_answer_has_the_contracted_shape():
    done = settle("--scenario", str(SCEN / "worked-example.toml"),
                  "--claims", str(SCEN / "worked-example-claims.json"), "--json")
    [answer] = json.loads(done.stdout)
    assert {k: answer[k] for k in ("claim_id", "status", "total", "in_scope", "deductible",
                                   "ratio", "fund_pay", "personal_pay", "tier", "error")} == {
        "claim_id": "C-001", "status": "direct", "total": "20000.00", "in_scope": "16500.00",
        "deductible": "600.00", "ratio": "0.50", "fund_pay": "7950.00",
        "personal_pay": "12050.00", "tier": "cross_region.referred", "error": None}
    assert list(answer)[:10] == ["claim_id", "status", "total", "in_scope", "deductible",
                                 "ratio", "fund_pay", "personal_pay", "tier", "error"]
    assert {k: answer[k] for k in ("class_a", "class_b", "class_c", "b_selfpay",
                                   "policy_region", "policy_version", "cap_left_before")} == {
        "class_a": "12000.00", "class_b": "5000.00", "class_c": "3000.00",
        "b_selfpay": "500.00", "policy_region": "360400", "policy_version": 1,
        "cap_left_before": "150000.00"}


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
    assert answers[2]["error"]["field"] == "items[0].code"
    assert (answers[0]["total"], answers[2]["total"]) == (None, "20000.00")
    assert answers[2]["fund_pay"] is None and answers[2]["personal_pay"] is None


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
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"clearsim: SCENARIO_INVALID: {path}: "
                                  "region[0].policy.resident.cross_region.referred.ratio: ")
    assert "between 0 and 1" in done.stderr


def test_a_missing_file_exits_2(tmp_path):
    done = settle("--scenario", str(SCEN / "worked-example.toml"),
                  "--claims", str(tmp_path / "none.json"))
    assert done.returncode == 2
    assert done.stderr.startswith(f"clearsim: CLAIMS_FILE_INVALID: {tmp_path / 'none.json'}: "
                                  "cannot be read")


def test_a_file_of_claims_that_is_not_an_array_exits_2(tmp_path):
    path = tmp_path / "claims.json"
    path.write_text('{"claim_id": "C-1"}')
    done = settle("--scenario", str(SCEN / "worked-example.toml"), "--claims", str(path))
    assert done.returncode == 2 and "must be a JSON array" in done.stderr

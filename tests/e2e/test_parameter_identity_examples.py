"""`clearsim run` on the parameter-mismatch and identity examples in scenarios/faults/."""

from __future__ import annotations

import json

from tests.e2e.test_run_cli import ROOT, assert_same_as_offline, clearsim

FAULTS = ROOT / "scenarios" / "faults"


def claims_of(out) -> dict[str, dict]:
    return {c["claim_id"]: c for c in json.loads((out / "claims.json").read_text())}


def test_the_wrong_ratio_copy_example_is_repaired_to_the_offline_money(tmp_path):
    done = clearsim("run", str(FAULTS / "parameter.toml"), "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "parties agree on 12 of 12 claims" in done.stdout
    assert_same_as_offline(list(claims_of(tmp_path).values()))


def test_without_repair_the_example_settles_c001_with_the_wrong_ratio(tmp_path):
    done = clearsim("run", str(FAULTS / "parameter.toml"), "--no-repair", "--out",
                    str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    c001 = claims_of(tmp_path)["C-001"]
    # (16,500.00 - 600.00) x 0.60 where Jiujiang's policy says 0.50 (7,950.00)
    assert (c001["fund_pay"], c001["ratio"]) == ("9540.00", "0.60")
    assert c001["parties"]["insuring_region"] == "mismatch"


def test_the_identity_example_sends_two_patients_to_manual_reimbursement(tmp_path):
    done = clearsim("run", str(FAULTS / "identity.toml"), "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    claims = claims_of(tmp_path)
    assert {c for c, claim in claims.items() if claim["status"] == "manual"} == {
        "C-004", "C-005", "C-011"}          # C-005 had no filing: manual in the demo too
    assert claims["C-004"]["parties"]["insuring_region"] == "manual"

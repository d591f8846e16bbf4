"""`clearsim run` on the interface-mismatch and corrupted-bytes examples in scenarios/faults/."""

from __future__ import annotations

import json

from tests.e2e.test_run_cli import ROOT, assert_same_as_offline, clearsim

FAULTS = ROOT / "scenarios" / "faults"


def test_the_interface_example_falls_back_to_manual_and_exits_0(tmp_path):
    done = clearsim("run", str(FAULTS / "interface.toml"), "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    claims = {c["claim_id"]: c for c in json.loads((tmp_path / "claims.json").read_text())}
    assert summary["agreed"] == summary["claims"] == 12 and not summary["invariant_violations"]
    assert set(summary["rejections_by_code"]) == {"SCHEMA_INCOMPATIBLE"}
    assert {c for c, claim in claims.items() if claim["status"] == "manual"} == {
        "C-001", "C-004", "C-005"}          # C-005 was filed for nothing: manual anyway
    assert claims["C-001"]["parties"]["hub"] == "refused"


def test_the_corrupt_example_changes_no_money_and_exits_0(tmp_path):
    done = clearsim("run", str(FAULTS / "corrupt.toml"), "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["rejections_by_code"]) <= {"MESSAGE_MALFORMED", "SCHEMA_UNKNOWN"}
    assert sum(summary["rejections_by_code"].values()) > 0
    assert_same_as_offline(json.loads((tmp_path / "claims.json").read_text()))

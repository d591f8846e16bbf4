"""The transport and unavailability examples in scenarios/faults/ run to the end."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_run_cli import ROOT, assert_same_as_offline, clearsim


@pytest.mark.parametrize("name", ["transport", "outage"])
def test_the_example_runs_and_every_claim_settles_as_offline(tmp_path, name):
    done = clearsim("run", str(ROOT / "scenarios" / "faults" / f"{name}.toml"),
                    "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["unfinished"] == 0 and not summary["invariant_violations"]
    assert_same_as_offline(json.loads((tmp_path / "claims.json").read_text()))

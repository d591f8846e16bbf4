"""`clearsim run` end to end on the embedded defaults (in-process bus, SQLite)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.toml"
DEMO_CLAIMS = ROOT / "scenarios" / "demo-claims.json"
COMPARED = ("status", "total", "in_scope", "deductible", "ratio", "fund_pay", "personal_pay",
            "tier")


def clearsim(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "testbed.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def offline_answers() -> dict[str, dict]:
    done = clearsim("settle", "--scenario", str(DEMO), "--claims", str(DEMO_CLAIMS), "--json")
    assert done.returncode == 0, done.stderr
    return {a["claim_id"]: a for a in json.loads(done.stdout)}


def assert_same_as_offline(claims: list[dict]) -> None:
    """The networked run settles every claim exactly as the offline calculator does."""
    offline = offline_answers()
    assert [c["claim_id"] for c in claims] == list(offline)
    for claim in claims:
        expected = offline[claim["claim_id"]]
        for key in COMPARED:
            if expected["status"] == "rejected" and key != "status":
                continue
            assert claim[key] == expected[key], (claim["claim_id"], key)
        if expected["status"] == "rejected":
            assert claim["error"]["code"] == expected["error"]["code"], claim["claim_id"]


def test_demo_runs_and_every_party_agrees(tmp_path):
    done = clearsim("run", str(DEMO), "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    claims = json.loads((tmp_path / "claims.json").read_text())
    assert summary["claims"] == 12 == summary["agreed"]
    assert summary["unfinished"] == 0
    assert {c["status"] for c in claims} == {"direct", "manual", "rejected"}
    assert "parties agree on 12 of 12 claims" in done.stdout
    assert (tmp_path / "claims.csv").read_text().count("\n") == 13
    distributions = (tmp_path / "distributions.csv").read_text().splitlines()
    assert distributions[0] == "metric,count,mean,p50,p90,p99,max"
    assert distributions[-1].startswith(f"payback_days,10,{summary['payback_days']['mean']},")
    assert "201903,360400" in (tmp_path / "clearing.csv").read_text()
    assert_same_as_offline(claims)
    # Direct cross-region claims went through all four parties and all hold the same state.
    worked = next(c for c in claims if c["claim_id"] == "C-001")
    assert worked["parties"] == {"hospital": "settled", "treating_region": "confirmed",
                                 "hub": "confirmed", "insuring_region": "settled"}
    assert (worked["fund_pay"], worked["personal_pay"]) == ("7950.00", "12050.00")


def test_run_refuses_a_scenario_without_claims(tmp_path):
    scenario = tmp_path / "s.toml"
    without_workload = DEMO.read_text().split("[workload]")[0]
    scenario.write_text(without_workload.replace('claims = "demo-claims.json"\n', ""))
    done = clearsim("run", str(scenario))
    assert done.returncode == 2
    assert "no claims to run" in done.stderr and "[workload]" in done.stderr


def test_a_generated_month_settles_as_the_offline_calculator_says(tmp_path):
    from clearsim.sim.claims import parse_claims
    from clearsim.sim.scenario import load_scenario
    from clearsim.sim.settle_cli import settle_file
    from clearsim.sim.workload import generate

    done = clearsim("run", str(DEMO), "--workload", "--days", "20", "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    claims = json.loads((tmp_path / "claims.json").read_text())
    scenario = load_scenario(DEMO)
    generated = generate(scenario.workload, scenario, scenario.sim.start, 20,
                         scenario.sim.seed)
    offline = {a["claim_id"]: a for a in settle_file(scenario, parse_claims(generated))}
    assert len(claims) == len(offline) > 40
    assert all(c["agreed"] for c in claims)
    for claim in claims:
        for key in COMPARED:
            assert claim[key] == offline[claim["claim_id"]][key], (claim["claim_id"], key)

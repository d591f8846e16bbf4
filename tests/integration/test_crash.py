"""The crash harness on a test bed of node processes, on the real broker and PostgreSQL:
nodes of every kind killed (SIGKILL) and started again at random moments, the broker and the
database server crashed and started again mid-run; nothing lost, nothing settled twice,
every invariant holding, and per claim the results of the fault-free run of the same seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearsim.sim.claims import parse_claims
from clearsim.sim.scenario import load_scenario
from clearsim.sim.workload import stream
from testbed.crash import CrashPlan
from testbed.runner import RunOptions, Simulation

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.toml"
DAYS = 60
COMPARED = ("claim_id", "status", "total", "in_scope", "deductible", "fund_pay",
            "personal_pay", "class_c", "ratio", "tier", "policy_version", "parties", "agreed",
            "reconciled_on", "paid_on")


def workload():
    scenario = load_scenario(DEMO)
    return scenario, parse_claims(stream(scenario.workload, scenario, scenario.sim.start, DAYS,
                                         scenario.sim.seed))


def decisions(result) -> list[dict]:
    return [{k: c.get(k) for k in COMPARED} for c in result.claims]


@pytest.mark.kafka
@pytest.mark.postgres
@pytest.mark.timeout(900)
def test_twenty_kills_a_broker_crash_and_a_database_crash_change_nothing(
        tmp_path, kafka_broker, kafka_bootstrap, topic_prefix):
    from clearsim.testing.postgres import PostgresServer
    scenario, claims = workload()
    expected = Simulation(scenario, claims, RunOptions(workdir=tmp_path / "ref")).run()
    assert expected.ok

    with PostgresServer(workdir=tmp_path / "pg", durable=True) as database:
        plan = CrashPlan(kills=20, seed=11, every=(0.5, 2.5), down=(0.0, 0.8),
                         broker_restarts=1 if kafka_broker is not None else 0,
                         database_restarts=1, server_down=1.0)
        sim = Simulation(scenario, claims, RunOptions(
            workdir=tmp_path / "db", kafka=kafka_bootstrap, postgres=database.url,
            prefix=topic_prefix, processes=True, broker=kafka_broker,
            node_args=(str(DEMO), "--workload", "--days", str(DAYS)),
            crash=plan, database_server=database, rate=10.0, timeout=180))
        result = sim.run()
    crashes = result.summary["crashes"]
    assert crashes["kills"] == 20
    assert set(crashes["node_kinds_killed"]) == {"hub", "region", "hospitals"}
    assert crashes["database_restarts"] == 1
    if kafka_broker is not None:
        assert crashes["broker_restarts"] == 1
    assert result.summary["unfinished"] == 0
    assert result.summary["delivery"]["ok"], result.summary["delivery_problems"]
    assert not result.summary["invariant_violations"]
    assert result.ok
    assert decisions(result) == decisions(expected)
    assert result.summary["fund_pay"] == expected.summary["fund_pay"]
    assert result.summary["charges"] == expected.summary["charges"]
    # Every node killed came back: its log shows each kill, and a start after its last
    # one (a node may be killed again while still starting; the plan's very last kill may
    # be followed by the run's end before the process has started: nothing was left for it).
    logs = tmp_path / "logs"
    kills = [c["target"] for c in crashes["crashes"] if c["what"] == "kill"]
    for node in set(kills) - {kills[-1]}:
        text = (logs / f"{node}.log").read_text()
        assert text.count("killed (SIGKILL)") == kills.count(node)
        assert text.rsplit("killed (SIGKILL)", 1)[1].count(": started") >= 1, node

"""The crash soak: the demo's workload as node processes on a real broker and PostgreSQL, with
nodes killed (SIGKILL) and started again many times and the broker and the database server
crashed several times (testbed.crash), then judged against the fault-free run of the same
seed: every claim's result, the money, the invariants, the delivery check.

    python benchmarks/soak.py [--quick]

It starts its own broker and its own PostgreSQL server (it crashes them: the other
benchmarks' servers are left alone), the server with ``synchronous_commit=on`` (see the
README, "Crashes"). Quick mode is the CI test's size: 20 kills, one crash of each server.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(ROOT), str(ROOT / "benchmarks")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from figures import Env, Figure  # noqa: E402

SECTION = "crash soak"
DEMO = ROOT / "scenarios" / "demo.toml"
COMPARED = ("claim_id", "status", "total", "fund_pay", "personal_pay", "ratio", "tier",
            "parties", "agreed", "reconciled_on", "paid_on")


def sizes(quick: bool) -> dict:
    if quick:
        return {"days": 60, "kills": 20, "servers": 1, "rate": 10.0}
    return {"days": 240, "kills": 120, "servers": 3, "rate": 8.0}


def measure(env: Env) -> list[Figure]:
    from clearsim.sim.claims import parse_claims
    from clearsim.sim.scenario import load_scenario
    from clearsim.sim.workload import stream
    from clearsim.testing.kafka import KafkaBroker
    from clearsim.testing.postgres import PostgresServer
    from testbed.crash import CrashPlan
    from testbed.runner import RunOptions, Simulation

    size = sizes(env.quick)
    work = env.workdir / "soak"
    shutil.rmtree(work, ignore_errors=True)      # every run from empty databases
    scenario = load_scenario(DEMO)
    claims = parse_claims(stream(scenario.workload, scenario, scenario.sim.start,
                                 size["days"], scenario.sim.seed))
    expected = Simulation(scenario, claims, RunOptions(workdir=work / "reference")).run()
    plan = CrashPlan(kills=size["kills"], seed=2019, every=(0.5, 3.0), down=(0.0, 1.0),
                     broker_restarts=size["servers"], database_restarts=size["servers"],
                     server_down=2.0)
    broker = KafkaBroker(workdir=work / "kafka").start()
    try:
        with PostgresServer(workdir=work / "postgres", durable=True) as database:
            started = time.perf_counter()
            sim = Simulation(scenario, claims, RunOptions(
                workdir=work / "db", kafka=broker.bootstrap, postgres=database.url,
                prefix=f"soak{int(time.time())}", processes=True, broker=broker,
                node_args=(str(DEMO), "--workload", "--days", str(size["days"])),
                crash=plan, database_server=database, rate=size["rate"], timeout=300))
            result = sim.run()
            seconds = time.perf_counter() - started
    finally:
        broker.stop()
    return figures(result, expected, seconds, size)


def figures(result, expected, seconds: float, size: dict) -> list[Figure]:
    crashes = result.summary.get("crashes", {})
    same = ([{k: c.get(k) for k in COMPARED} for c in result.claims]
            == [{k: c.get(k) for k in COMPARED} for c in expected.claims])
    agreed = sum(1 for c in result.claims if c["agreed"])
    delivery = result.summary["delivery"]
    how = (f"{size['days']} days of the demo's workload, offered at {size['rate']:g} claims/s, "
           f"as node processes on one broker and PostgreSQL")
    return [
        Figure(SECTION, "node kills survived", crashes.get("kills"), "kills", size["kills"],
               note=f"SIGKILL, every kind of node: {', '.join(crashes.get('node_kinds_killed', []))}",
               detail={"crashes": crashes.get("crashes", [])}),
        Figure(SECTION, "broker crashes survived", crashes.get("broker_restarts"), "restarts",
               size["servers"]),
        Figure(SECTION, "PostgreSQL crashes survived", crashes.get("database_restarts"),
               "restarts", size["servers"], note="SIGQUIT: immediate shutdown, recovery on start"),
        Figure(SECTION, "claims", len(result.claims), "claims", note=how),
        Figure(SECTION, "claims every party agrees on", agreed, "claims", len(result.claims)),
        Figure(SECTION, "claims as in the fault-free run", len(result.claims) if same else 0,
               "claims", len(expected.claims),
               note="every claim's status, amounts, tier, parties, reconciliation and payback "
                    "day equal the fault-free run's" if same else "DIFFERENT from the "
                    "fault-free run"),
        Figure(SECTION, "messages lost, stuck, doubled or reordered",
               sum(len(result.delivery.get(k, [])) for k in
                   ("lost", "stuck", "doubled", "reordered")), "messages", 0,
               higher_is_better=False,
               note=f"{delivery['sent']:,} sent, {delivery['handled']:,} handled; invariant "
                    f"violations: {len(result.summary['invariant_violations'])}"),
        Figure(SECTION, "duration", seconds, "s", higher_is_better=False),
    ]


def main() -> None:
    import argparse
    from figures import show
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    show(measure(Env(quick=args.quick, workdir=ROOT / "out" / "bench")))


if __name__ == "__main__":
    main()

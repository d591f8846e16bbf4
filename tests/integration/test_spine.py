"""The message spine end to end, on the in-process bus and on a real Kafka broker.

One suite, two transports: the demo settles every claim as the offline calculator does;
a node stopped mid-run and restarted on the same database resumes without losing a claim;
a node whose offsets were never committed gets everything again and counts nothing twice;
the same demo on PostgreSQL databases.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from clearsim.messages import HUB, region_node
from clearsim.sim.claims import load_claims
from clearsim.sim.scenario import load_scenario
from testbed.runner import NodeThread, RunOptions, Simulation
from tests.e2e.test_run_cli import assert_same_as_offline

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.toml"


def simulation(tmp_path, bus_url, topic_prefix, postgres=None) -> Simulation:
    scenario = load_scenario(DEMO)
    claims = load_claims(scenario.sim.claims)
    return Simulation(scenario, claims, RunOptions(
        workdir=tmp_path, kafka=bus_url, postgres=postgres, prefix=topic_prefix,
        timeout=120))


def assert_all_agree(result) -> None:
    unfinished = [c for c in result.claims if not c["agreed"]]
    assert not unfinished, unfinished
    assert result.summary["agreed"] == result.summary["claims"] == 12
    assert_same_as_offline(result.claims)


def test_demo_settles_every_claim_as_the_offline_calculator(tmp_path, bus_url, topic_prefix):
    result = simulation(tmp_path, bus_url, topic_prefix).run()
    assert_all_agree(result)
    # A mapping error is an answer to the hospital, not a refused message.
    assert result.summary["rejections_by_code"] == {}


def restart_later(sim: Simulation, node_id: str, after: float, rebuild) -> threading.Timer:
    """Stop ``node_id`` now and start a fresh node on the same database ``after`` seconds
    later, as an operator restarting a crashed process would."""
    thread = next(t for t in sim.threads if t.name == node_id)
    thread.stop()
    sim.nodes[node_id].stop()

    def start_again() -> None:
        node = rebuild()
        node.start()
        sim.nodes[node_id] = node
        new = NodeThread(node)
        sim.threads[sim.threads.index(thread)] = new
        new.start()

    timer = threading.Timer(after, start_again)
    timer.start()
    return timer


def _rebuild(sim: Simulation, node_id: str):
    from hub import node as hub_wiring
    from region_node import node as region_wiring

    common = {"bus": sim.bus, "codec": sim.codec, "prefix": sim.prefix, "sensor": sim.counts}
    if node_id == HUB:
        return lambda: hub_wiring.build(sim.topology.hub, db_url=sim.db_url(HUB), **common)
    code = node_id.removeprefix("region-")
    return lambda: region_wiring.build(sim.topology.regions[code],
                                       db_url=sim.db_url(node_id), **common)


@pytest.mark.parametrize("node_id", [HUB, region_node("360400")])
def test_a_stopped_node_restarts_and_no_claim_is_lost(tmp_path, bus_url, topic_prefix,
                                                       node_id):
    sim = simulation(tmp_path, bus_url, topic_prefix)
    sim.start()
    try:
        sim.await_policies()
        sim.register_filings()
        timer = restart_later(sim, node_id, after=1.5, rebuild=_rebuild(sim, node_id))
        sim.submit_claims()
        timer.join()
    finally:
        sim.stop()
    from testbed.report import collect
    assert_all_agree(collect(sim, wall_seconds=0))


def test_uncommitted_offsets_mean_redelivery_and_nothing_counted_twice(tmp_path, bus_url,
                                                                       topic_prefix):
    """The hub commits its database but never its offsets; after a restart the bus hands it
    everything again. Every redelivered message is absorbed by its msgid."""
    sim = simulation(tmp_path, bus_url, topic_prefix)
    sim.start()
    try:
        hub = sim.nodes[HUB]
        hub._consumer.commit = lambda *args, **kwargs: None   # a crash before every commit
        sim.await_policies()
        sim.register_filings()
        timer = restart_later(sim, HUB, after=1.0, rebuild=_rebuild(sim, HUB))
        sim.submit_claims()
        timer.join()
    finally:
        sim.stop()
    from testbed.report import collect
    result = collect(sim, wall_seconds=0)
    assert_all_agree(result)
    assert result.summary["duplicates_absorbed"] > 0


def test_demo_on_postgresql_databases(tmp_path, postgres_server, topic_prefix):
    result = simulation(tmp_path, None, topic_prefix, postgres=postgres_server.url).run()
    assert_all_agree(result)
    assert result.summary["database"] == "postgresql"

"""One broker of a 3-broker KRaft cluster is killed mid-run, and the run goes on without it.

The project's own cluster (``clearsim.testing.kafka.KafkaCluster``: three brokers, each a
controller too, on one machine) carries the demo with every topic replicated three times
and ``min.insync.replicas=2``. While claims are in flight the broker leading the partition
of the claim just sent is killed with SIGKILL: a crash, not a controlled shutdown (SIGTERM
would first hand its leaderships over; a crash leaves the cluster to notice the broker is
gone, fence it and elect new leaders, while clients meet refused connections). It stays
down until the run ends. The run must still finish every claim with every party agreeing,
the delivery check passing and no invariant violated, with the same per-claim results as
the in-process run of the same scenario. Then the broker is started again and rejoins.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.partitioner.default import murmur2

from clearsim.bus.kafka import KafkaBus
from clearsim.bus.topics import all_topics, hospitals_topic
from clearsim.sim.claims import load_claims
from clearsim.sim.scenario import load_scenario
from testbed.runner import RunOptions, Simulation
from tests.conftest import running

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.toml"
RATE = 2.0           # claims offered per wall second: the claims span the broker's loss
KILL_AT = 4          # the broker goes down as the 4th claim is sent


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory):
    """Three KRaft brokers owned by this module (never an outside cluster: the test kills
    one of them)."""
    from clearsim.testing.kafka import BrokerUnavailable, KafkaCluster

    cluster = KafkaCluster(3, workdir=tmp_path_factory.mktemp("kafka-cluster"))
    with running(cluster, BrokerUnavailable, "no 3-broker Kafka cluster could be started"):
        yield cluster


class BrokerKilledMidRun(Simulation):
    """The demo run, but as the ``kill_at``-th claim is sent (before the runner flushes
    it) the broker leading that claim's partition is killed."""

    def __init__(self, scenario, claims, options, cluster, kill_at: int):
        super().__init__(scenario, claims, options)
        self.cluster = cluster
        self.kill_at = kill_at
        self.killed: int | None = None
        self.killed_with: str | None = None        # the claim in flight at that moment
        self.submitted_before: set[str] = set()

    def submit(self, claim) -> None:
        super().submit(claim)
        if self.killed is None and len(self.submitted) + 1 == self.kill_at:
            region = self.scenario.hospitals[claim.hospital].region
            topic = hospitals_topic(self.prefix, region)
            leaders = self.cluster.leaders([topic])
            partition = (murmur2(claim.claim_id.encode()) & 0x7FFFFFFF) % len(leaders)
            self.killed = leaders[(topic, partition)]
            self.killed_with = claim.claim_id
            self.submitted_before = set(self.submitted)
            self.cluster.stop_broker(self.killed, sig=signal.SIGKILL)


def demo():
    scenario = load_scenario(DEMO)
    return scenario, load_claims(scenario.sim.claims)


def comparable(claims: list[dict]) -> list[dict]:
    """Per-claim results without the wall-clock latencies (``*_ms``)."""
    return [{k: v for k, v in c.items() if not k.endswith("_ms")} for c in claims]


def test_a_run_survives_one_broker_killed_mid_run(tmp_path, kafka_cluster, topic_prefix):
    scenario, claims = demo()
    in_process = Simulation(scenario, claims, RunOptions(workdir=tmp_path / "memory")).run()
    assert in_process.ok and in_process.summary["agreed"] == 12

    scenario, claims = demo()
    sim = BrokerKilledMidRun(scenario, claims, RunOptions(
        workdir=tmp_path / "cluster", kafka=kafka_cluster.bootstrap, prefix=topic_prefix,
        rate=RATE, timeout=120), kafka_cluster, KILL_AT)
    started = time.monotonic()
    result = sim.run()
    seconds = time.monotonic() - started

    killed = kafka_cluster.broker(sim.killed)
    assert sim.killed is not None and not killed.running      # down to the end of the run
    assert len(sim.submitted_before) == KILL_AT - 1           # claims were in flight ...
    assert set(sim.submitted) - sim.submitted_before - {sim.killed_with}   # ... and came after

    assert result.summary["unfinished"] == 0
    assert [c["claim_id"] for c in result.claims if not c["agreed"]] == []
    assert result.summary["invariant_violations"] == []
    assert result.delivery["ok"], result.delivery
    assert result.ok
    assert comparable(result.claims) == comparable(in_process.claims)

    # Every partition of the run is led by a broker still up, on three replicas of which
    # two must have a write.
    topics = all_topics(sim.prefix, sim.topology.regions)
    leaders = kafka_cluster.leaders(topics)
    assert set(leaders.values()) <= {b.node_id for b in kafka_cluster.brokers if b.running}
    bus = KafkaBus(kafka_cluster.live_bootstrap())
    try:
        described = bus.admin().describe_topics(topics)
        assert {len(p["replica_nodes"]) for t in described for p in t["partitions"]} == {3}
        answer = bus.admin().describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
        configs = {name: entries for per_type in answer.values()
                   for name, entries in per_type.items()}
        for topic in topics:
            entry = configs[topic]["min.insync.replicas"]
            assert (entry["value"] if isinstance(entry, dict) else entry) == "2", topic
    finally:
        bus.close()

    # The killed broker starts again on its data and rejoins the cluster.
    kafka_cluster.start_broker(sim.killed)
    assert kafka_cluster.registered() == {1, 2, 3}
    print(f"cluster run with broker {sim.killed} killed at claim {sim.killed_with}: "
          f"{seconds:.1f} s")

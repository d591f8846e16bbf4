"""A test bed for hostile input: the demo's real nodes on one bus, and a watch on the
dead-letter topic. The test plays every other party (and the attacker)."""

from __future__ import annotations

import time
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy import select

from clearsim.bus.memory import MemoryBus
from clearsim.bus.topics import dlq_topic
from clearsim.codec import Codec
from clearsim.db import processed_messages, rejections
from clearsim.deadletters import Parked, read
from clearsim.messages import Outgoing, topic_for
from clearsim.metrics import PrometheusSensor
from clearsim.node import Envelope, encode_outgoing
from clearsim.sim.claims import load_claims
from clearsim.sim.scenario import load_scenario
from testbed.topology import build_topology

ROOT = Path(__file__).resolve().parents[2]
WHEN = datetime(2019, 3, 2, tzinfo=timezone.utc)


def demo_topology():
    scenario = load_scenario(ROOT / "scenarios" / "demo.toml")
    return build_topology(scenario, load_claims(scenario.sim.claims))


def filing(filing_id="F-1", person="P-JJ-001", insuring="360400", treating="110000") -> dict:
    return {"filing_id": filing_id, "person_id": person, "insurance_code": "390",
            "insuring_region": insuring, "treating_region": treating,
            "filing_type": "referral", "valid_from": date(2019, 3, 1),
            "valid_until": date(2019, 3, 31)}


def settled(**changes) -> dict:
    """The worked example of DOMAIN.md, settled in Beijing for a Jiujiang patient."""
    body = {"settlement_id": "S-1", "visit_id": "M110000-C-1", "admission_no": "C-1",
            "person_id": "P-JJ-001", "insurance_code": "390", "insuring_region": "360400",
            "treating_region": "110000", "hospital": "H-BJ-3", "settled_at": WHEN,
            "total": 2_000_000, "class_a": 1_200_000, "class_b": 500_000,
            "class_c": 300_000, "b_selfpay": 50_000, "in_scope": 1_650_000,
            "deductible": 60_000, "ratio": Decimal("0.500000"), "pooled_fund_pay": 795_000,
            "fund_pay": 795_000, "account_pay": 0, "personal_pay": 1_205_000,
            "tier": "cross_region.referred", "policy_version": 1, "filing_type": "referral"}
    body.update(changes)
    return body


class Bed:
    """Real nodes (built by their packages, as a run builds them) on one in-process bus."""

    def __init__(self, tmp_path: Path, topology, bus=None, codec: Codec | None = None,
                 prefix: str | None = None, db_url=None):
        self.tmp_path = tmp_path
        self.db_url = db_url or (lambda node_id: f"sqlite:///{tmp_path / (node_id + '.db')}")
        self.topology = topology
        self.bus = bus or MemoryBus(default_partitions=1)
        self.codec = codec or Codec()
        self.prefix = prefix or "t" + uuid.uuid4().hex[:10]
        self.registry = CollectorRegistry()
        self.sensor = PrometheusSensor(self.registry)
        self.nodes: dict = {}
        self.producer = self.bus.producer()
        self.bus.ensure_topics([dlq_topic(self.prefix)])
        self.watch = self.bus.consumer(f"watch-{uuid.uuid4().hex[:6]}",
                                       [dlq_topic(self.prefix)])
        self.letters: list[Parked] = []

    def node(self, node_id: str, codec: Codec | None = None):
        if node_id not in self.nodes:
            kind, _, code = node_id.partition("-")
            args = dict(db_url=self.db_url(node_id), bus=self.bus, codec=codec or self.codec,
                        prefix=self.prefix, sensor=self.sensor)
            if kind == "hub":
                from hub.node import build
                node = build(self.topology.hub, **args)
            elif kind == "region":
                from region_node.node import build
                node = build(self.topology.regions[code], **args)
            else:
                from hospital_node.node import build
                node = build(self.topology.hospitals[code], **args)
            self.nodes[node_id] = node.start()
        return self.nodes[node_id]

    def restart(self, node_id: str, codec: Codec | None = None):
        self.nodes.pop(node_id).stop()
        return self.node(node_id, codec)

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
            node.db.dispose()
        self.watch.close()
        self.producer.close()

    # -- sending ---------------------------------------------------------------------

    def envelope(self, sender: str, kind: str, to: str, claim: str, body: dict,
                 sim_time: datetime = WHEN, codec: Codec | None = None) -> Envelope:
        return encode_outgoing(codec or self.codec, sender,
                               Outgoing(kind, to, claim, body, sim_time=sim_time), self.prefix)

    def send(self, sender: str, kind: str, to: str, claim: str, body: dict, **kw) -> Envelope:
        env = self.envelope(sender, kind, to, claim, body, **kw)
        self.put(env)
        return env

    def put(self, env: Envelope) -> None:
        self.bus.ensure_topics([env.topic])
        self.producer.send(env.topic, env.key, env.value, env.headers)
        self.producer.flush()

    def raw(self, to: str, value, key: bytes | None = None,
            headers: tuple = ()) -> None:
        """Bytes as a hostile producer writes them to ``to``'s topic."""
        self.bus.ensure_topics([topic_for(to, self.prefix)])
        self.producer.send(topic_for(to, self.prefix), key, value, headers)
        self.producer.flush()

    def step(self, node_id: str) -> int:
        """Let ``node_id`` take everything waiting for it (on the in-process bus)."""
        node, total = self.node(node_id), 0
        while (count := node.step(timeout=0)):
            total += count
        return total

    def until(self, node_id: str, done, timeout: float = 60.0) -> None:
        """Step ``node_id`` until ``done()`` (on a real broker records take a while)."""
        node = self.node(node_id)
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"{node_id}: gave up waiting"
            node.step(timeout=0.2)

    # -- looking ---------------------------------------------------------------------

    def parked(self, wait: float = 0) -> list[Parked]:
        """Every dead letter parked so far (those since the last look appended)."""
        self.letters += [read(self.codec, r.value) for r in self.watch.poll(timeout=wait)]
        return self.letters

    def parked_at_least(self, count: int, timeout: float = 60.0) -> list[Parked]:
        deadline = time.monotonic() + timeout
        while len(self.parked(wait=0.2)) < count:
            assert time.monotonic() < deadline, f"fewer than {count} dead letters came"
        return self.letters

    def refused(self, node_id: str) -> list[tuple[str, str | None]]:
        with self.node(node_id).db.engine.connect() as conn:
            return [(r.code, r.field) for r in conn.execute(
                select(rejections).order_by(rejections.c.id))]

    def outcome(self, node_id: str, msgid: str) -> str | None:
        with self.node(node_id).db.engine.connect() as conn:
            return conn.execute(select(processed_messages.c.outcome).where(
                processed_messages.c.msgid == msgid)).scalar()

    def arrived(self, to: str, group: str = "look") -> list[tuple[str, str]]:
        """(kind, correlation id) of what reached ``to``'s topic since the last look."""
        consumer = getattr(self, f"_look_{to}", None)
        if consumer is None:
            self.bus.ensure_topics([topic_for(to, self.prefix)])
            consumer = self.bus.consumer(f"{group}-{to}", [topic_for(to, self.prefix)])
            setattr(self, f"_look_{to}", consumer)
        return [(h["kind"], h["correlation_id"])
                for h in ({k: v.decode() for k, v in r.headers}
                          for r in consumer.poll(timeout=0))]

    def count(self, family: str, **labels) -> float:
        return self.registry.get_sample_value(family, labels) or 0.0

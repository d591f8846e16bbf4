"""A region node reads the policy table beside its own topic: a batch's records are applied
together as a table (the newest version of each region's policy wins, no message id is
recorded), and a record that cannot be read is refused like any message."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from clearsim import wire
from clearsim.bus.memory import MemoryBus
from clearsim.codec import Codec
from clearsim.db import processed_messages, rejections
from clearsim.messages import HUB, POLICIES, Outgoing, topic_for
from clearsim.node import encode_outgoing
from clearsim.sim.claims import load_claims
from clearsim.sim.scenario import load_scenario
from region_node import node as region_wiring
from region_node import queries as region_queries
from region_node import tables as region_tables
from testbed.topology import build_topology

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scenario():
    return load_scenario(ROOT / "scenarios" / "demo.toml")


@pytest.fixture
def jiujiang(tmp_path, scenario):
    topo = build_topology(scenario, load_claims(scenario.sim.claims))
    bus, codec, prefix = MemoryBus(default_partitions=1), Codec(), "t" + uuid.uuid4().hex[:8]
    node = region_wiring.build(topo.regions["360400"], db_url=f"sqlite:///{tmp_path}/r.db",
                               bus=bus, codec=codec, prefix=prefix)
    node.start()
    yield node, bus, codec, prefix
    node.stop()


def publish(bus, codec, prefix, policy) -> None:
    env = encode_outgoing(codec, HUB, Outgoing("PolicyPublished", POLICIES, policy.region,
                                               wire.policy_body(policy)), prefix)
    bus.producer().send(env.topic, env.key, env.value, env.headers)


def count(node, table) -> int:
    with node.db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def test_a_batch_of_the_policy_table_keeps_the_newest_version_of_each_region(jiujiang,
                                                                            scenario):
    node, bus, codec, prefix = jiujiang
    node.step(timeout=0)                       # its own policy went to the hub at start
    handled_before = count(node, processed_messages)
    beijing = scenario.regions["110000"].policy
    newer = dataclasses.replace(beijing, version=beijing.version + 1)
    for policy in (newer, beijing, scenario.regions["310000"].policy):   # newest first
        publish(bus, codec, prefix, policy)
    assert node.step(timeout=0) == 3           # one batch
    with node.db.engine.connect() as conn:
        assert region_tables.cached_versions(conn, ["110000", "310000"]) == {
            "110000": newer.version, "310000": scenario.regions["310000"].policy.version}
        assert region_queries.policies_held(conn) == 2
    assert count(node, processed_messages) == handled_before   # a table: no ids recorded
    publish(bus, codec, prefix, newer)         # the same record again changes nothing
    node.step(timeout=0)
    with node.db.engine.connect() as conn:
        assert region_queries.policies_held(conn) == 2


def test_a_record_of_the_policy_table_that_cannot_be_read_is_refused(jiujiang, scenario):
    node, bus, codec, prefix = jiujiang
    bus.producer().send(topic_for(POLICIES, prefix), b"110000", b"not avro",
                        (("msgid", b"hub-x1"), ("kind", b"PolicyPublished"),
                         ("sender", b"hub"), ("correlation_id", b"110000")))
    publish(bus, codec, prefix, scenario.regions["310000"].policy)
    node.step(timeout=0)
    with node.db.engine.connect() as conn:
        codes = [r.code for r in conn.execute(select(rejections.c.code))]
        assert region_queries.policies_held(conn) == 1    # the readable one was applied
    assert codes == ["MESSAGE_MALFORMED"]


def test_regions_of_one_process_decode_a_record_of_the_table_once_and_each_keeps_it(
        tmp_path, scenario, monkeypatch):
    """Every region reads every region's policy: in one process the same bytes are decoded
    and translated once for all of them (not regions² times), and each region still stores
    its own copy; bytes that differ (a record corrupted on one link) are read for what they
    are."""
    topo = build_topology(scenario, load_claims(scenario.sim.claims))
    bus, codec, prefix = MemoryBus(default_partitions=1), Codec(), "t" + uuid.uuid4().hex[:8]
    nodes = [region_wiring.build(topo.regions[code], db_url=f"sqlite:///{tmp_path}/{code}.db",
                                 bus=bus, codec=codec, prefix=prefix)
             for code in ("360400", "110000")]
    for node in nodes:
        node.start()
    try:
        for node in nodes:
            node.step(timeout=0)               # their own policies went to the hub
        decoded: list[bytes] = []
        real = codec.decode

        def counting(data: bytes):
            decoded.append(data)
            return real(data)
        monkeypatch.setattr(codec, "decode", counting)
        newer = dataclasses.replace(scenario.regions["310000"].policy, version=99)
        publish(bus, codec, prefix, newer)
        for node in nodes:
            assert node.step(timeout=0) == 1
        assert len(decoded) == 1
        for node in nodes:
            with node.db.engine.connect() as conn:
                assert region_tables.cached_versions(conn, ["310000"]) == {"310000": 99}
                stored = region_tables.cached_policy(conn, "310000")
            assert wire.policy_from_body(stored["policy"]) == newer
        bus.producer().send(topic_for(POLICIES, prefix), b"310000", b"not avro",
                            (("msgid", b"hub-x2"), ("kind", b"PolicyPublished"),
                             ("sender", b"hub"), ("correlation_id", b"310000")))
        for node in nodes:
            node.step(timeout=0)
            with node.db.engine.connect() as conn:
                codes = [r.code for r in conn.execute(select(rejections.c.code))]
            assert codes == ["MESSAGE_MALFORMED"]
    finally:
        for node in nodes:
            node.stop()

"""Who may say what, on the real broker: SASL/SCRAM and ACLs.

One KRaft broker of the project's own (``clearsim.testing.kafka``) with a SASL_PLAINTEXT
listener, SCRAM-SHA-256 credentials for the admin and for every node of the demo created
when its storage is formatted, ``StandardAuthorizer`` and
``allow.everyone.if.no.acl.found=false``. The demo's ACL plan (``clearsim.bus.security``)
is applied by the admin. Then, with kafka-python's own clients, the credentials of the
hospital node of Jiujiang (360400) may write to its own region's topic (and to Beijing's,
whose insured it treats: it files their manual reimbursements there) and read its own
topic in its own group, and are refused everything else: the other regions' topics, the
hub's, the policy table, another node's topic or group. A wrong password, an unknown user
and a client without credentials get nowhere. Last, the demo runs end to end on that broker
as node processes, each with its own credentials, and ends as the single-process run ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition
from kafka.errors import (GroupAuthorizationFailedError, KafkaTimeoutError,
                          TopicAuthorizationFailedError)

from clearsim.bus.base import BusError
from clearsim.bus.kafka import security_settings
from clearsim.bus.security import DRIVER, Credentials, Operation, Resource, plan_for
from clearsim.sim.claims import load_claims
from clearsim.sim.scenario import load_scenario
from tests.conftest import running

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.toml"
HOSPITAL = "hospitals-360400"            # the node whose credentials are tried
CLIENT = {"request_timeout_ms": 10000, "bootstrap_timeout_ms": 15000}


def demo_plan(prefix: str):
    scenario = load_scenario(DEMO)
    return plan_for(scenario, load_claims(scenario.sim.claims), prefix)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A secured broker owned by this module, knowing every principal of the demo."""
    from clearsim.testing.kafka import BrokerUnavailable, KafkaBroker, Security

    security = Security.generate(demo_plan("any").users())
    server = KafkaBroker(workdir=tmp_path_factory.mktemp("kafka-sasl"), security=security)
    with running(server, BrokerUnavailable, "no secured Kafka broker could be started"):
        yield server


@pytest.fixture(scope="module")
def probed(broker):
    """A prefix of its own for the probes (their records must not reach the demo's nodes),
    its plan applied."""
    prefix = "s" + uuid.uuid4().hex[:10]
    the_plan = demo_plan(prefix)
    broker.apply(the_plan)
    return the_plan


def producer(broker, user: str) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all",
                         enable_idempotence=True, max_block_ms=10000,
                         **CLIENT, **broker.client_settings(user))


def consumer(broker, user: str, group: str | None, *topics: str) -> KafkaConsumer:
    return KafkaConsumer(*topics, bootstrap_servers=broker.bootstrap, group_id=group,
                         auto_offset_reset="earliest", enable_auto_commit=False,
                         **CLIENT, **broker.client_settings(user))


def test_the_broker_holds_exactly_the_plan(broker, probed):
    admin = broker.bus()
    try:
        held = {g for g in admin.granted() if g.name.startswith(probed.prefix + ".")}
        topics = {t for t in admin.admin().list_topics() if t.startswith(probed.prefix + ".")}
    finally:
        admin.close()
    assert held == set(probed.grants)
    assert topics == set(probed.topics)


def test_a_hospital_node_writes_only_where_its_messages_go(broker, probed):
    """Its own region's topic, the topic of the region whose insured it treats and the
    dead-letter topic (where it parks what it refuses); every other topic of the run is
    refused with TopicAuthorizationFailedError."""
    allowed = probed.writes(HOSPITAL)
    assert allowed == {f"{probed.prefix}.region.360400", f"{probed.prefix}.region.110000",
                       f"{probed.prefix}.dlq"}
    for topic in sorted(probed.topics):
        # A producer per topic: a refused write is fatal to kafka-python's idempotent
        # producer, which would fail every later send too.
        client = producer(broker, HOSPITAL)
        try:
            if topic in allowed:
                sent = client.send(topic, key=b"C-011", value=b"probe").get(timeout=15)
                assert sent.topic == topic and sent.offset >= 0
            else:
                with pytest.raises(TopicAuthorizationFailedError):
                    client.send(topic, key=b"C-011", value=b"probe").get(timeout=15)
        finally:
            client.close(timeout=5)
    refused = set(probed.topics) - allowed
    assert {f"{probed.prefix}.hub", f"{probed.prefix}.policies",
            f"{probed.prefix}.region.310000", f"{probed.prefix}.region.440100",
            f"{probed.prefix}.hospitals.110000"} <= refused


def test_a_hospital_node_reads_its_own_topic_in_its_own_group_and_nothing_else(broker, probed):
    own = f"{probed.prefix}.hospitals.360400"
    region = f"{probed.prefix}.region.360400"
    driver = producer(broker, DRIVER)                  # a patient arrives
    try:
        driver.send(own, key=b"C-011", value=b"admit").get(timeout=15)
    finally:
        driver.close(timeout=5)
    reader = consumer(broker, HOSPITAL, own, own)
    try:
        got = []
        for _ in range(40):
            got += [r.value for records in reader.poll(timeout_ms=500).values()
                    for r in records]
            if got:
                break
        assert got == [b"admit"]
        reader.commit()                                  # its group's offsets are its own
    finally:
        reader.close(autocommit=False)
    # Another node's topic, in its own group: the topic is refused.
    reader = consumer(broker, HOSPITAL, own, region)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            for _ in range(40):
                reader.poll(timeout_ms=500)
    finally:
        reader.close(autocommit=False)
    # Its own topic, in another node's group: the group is refused.
    reader = consumer(broker, HOSPITAL, region, own)
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            for _ in range(40):
                reader.poll(timeout_ms=500)
    finally:
        reader.close(autocommit=False)
    # Another node's partition, taken without any group: the fetch is refused.
    reader = consumer(broker, HOSPITAL, None)
    try:
        reader.assign([KTopicPartition(region, 0)])
        with pytest.raises(TopicAuthorizationFailedError):
            reader.seek_to_beginning()
            for _ in range(40):
                reader.poll(timeout_ms=500)
    finally:
        reader.close(autocommit=False)


def test_a_node_sees_only_the_topics_it_may_use(broker, probed):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, **CLIENT,
                             **broker.client_settings(HOSPITAL))
    try:
        seen = {t for t in admin.list_topics() if t.startswith(probed.prefix + ".")}
    finally:
        admin.close()
    assert seen == probed.reads(HOSPITAL) | probed.writes(HOSPITAL)


@pytest.mark.parametrize("credentials", [
    Credentials(HOSPITAL, "not-its-password"),
    Credentials("hospitals-999999", "no-such-user"),
    None,                                               # PLAINTEXT on a SASL listener
], ids=["wrong password", "unknown user", "no credentials"])
def test_a_client_the_broker_cannot_authenticate_gets_nowhere(broker, probed, credentials):
    """The broker closes the connection of a client whose SCRAM proof fails (or that does
    not authenticate at all); kafka-python tries again until its bootstrap time is out.
    The same client with the right password is served at once."""
    with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
        KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=3000,
                         bootstrap_timeout_ms=4000, **security_settings(credentials))
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=3000,
                             bootstrap_timeout_ms=4000, **broker.client_settings(HOSPITAL))
    try:
        assert f"{probed.prefix}.hospitals.360400" in admin.list_topics()
    finally:
        admin.close()


def test_what_the_plan_grants_is_what_the_broker_enforces_for_every_node(broker, probed):
    """Every principal of the plan, through the bus the nodes use, on every topic of the
    run: its writes are acknowledged where the plan allows them and refused everywhere else,
    and a refused write does not stop the next ones (the bus replaces the producer that
    kafka-python gives up on)."""
    for user in probed.users():
        bus = broker.bus(user, client_id=f"probe-{user}")
        client = bus.producer()
        try:
            for topic in sorted(probed.topics):
                may = probed.allows(user, Operation.WRITE, Resource.TOPIC, topic)
                try:
                    client.send(topic, b"C-001", b"probe", [("msgid", b"m1")])
                    client.flush()
                    accepted = True
                except BusError as exc:
                    assert "TopicAuthorizationFailedError" in str(exc), exc
                    assert f"as User:{user}" in str(exc)
                    accepted = False
                assert accepted == may, (user, topic)
        finally:
            client.close()
            bus.close()


def test_a_refused_write_leaves_the_nodes_other_writes_going(broker, probed):
    """Through the bus a node uses: the record the broker refuses stays unacknowledged (its
    outbox sends it again later; so may the records kafka-python aborted with it), the
    producer kafka-python gave up on is replaced, the next record for that topic fails at
    once without costing another one, and the records for the topics the node may write
    are acknowledged."""
    own = f"{probed.prefix}.hospitals.360400"        # it may see it, not write it
    region = f"{probed.prefix}.region.360400"
    bus = broker.bus(HOSPITAL, client_id="probe-refused")
    producer = bus.producer()
    try:
        producer.send(own, b"C-011", b"answer", [("msgid", b"r1")])
        producer.send(region, b"C-011", b"request", [("msgid", b"r2")])
        with pytest.raises(BusError, match="TopicAuthorizationFailedError") as refused:
            producer.flush()
        assert "r1" in refused.value.unacknowledged
        renewed = producer._producer
        for msgid in sorted(refused.value.unacknowledged):     # as the outbox would
            producer.send(own if msgid == "r1" else region, b"C-011", b"again",
                          [("msgid", msgid.encode())])
        producer.send(region, b"C-012", b"request", [("msgid", b"r3")])
        with pytest.raises(BusError, match="TopicAuthorizationFailedError") as again:
            producer.flush()
        assert again.value.unacknowledged == {"r1"}
        assert producer._producer is renewed
        producer.send(region, b"C-013", b"request", [("msgid", b"r4")])
        producer.flush()
    finally:
        producer.close()
        bus.close()


# -- the demo, every node with its own credentials ------------------------------------------

COMPARED = ("claim_id", "status", "total", "in_scope", "deductible", "fund_pay",
            "personal_pay", "class_c", "ratio", "tier", "policy_version", "parties", "agreed")


def clearsim(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "testbed.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def decisions(out: Path) -> list[dict]:
    return [{k: c.get(k) for k in COMPARED}
            for c in json.loads((out / "claims.json").read_text())]


def base_environment() -> dict:
    """This process's environment without any Kafka credentials of its own."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CLEARSIM_KAFKA_")}


def test_the_demo_runs_with_every_node_speaking_as_itself(broker, tmp_path):
    single = tmp_path / "single"
    done = clearsim("run", str(DEMO), "--out", str(single), env=base_environment())
    assert done.returncode == 0, done.stderr[-2000:]

    prefix = "t" + uuid.uuid4().hex[:10]
    the_plan = demo_plan(prefix)
    broker.apply(the_plan)
    env = {**base_environment(), "CLEARSIM_KAFKA": broker.bootstrap,
           "CLEARSIM_DB": str(tmp_path / "nodes"), "CLEARSIM_PREFIX": prefix}
    logs = tmp_path / "logs"
    logs.mkdir()
    scenario = load_scenario(DEMO)
    nodes = scenario.node_ids()
    assert len(nodes) == 9 and set(nodes) | {DRIVER} == set(the_plan.users())
    processes = {}
    try:
        for node in nodes:
            kind, _, code = node.partition("-")
            where = [] if not code else ["--code" if kind == "region" else "--region", code]
            own = broker.security.credentials(node).environment()
            processes[node] = subprocess.Popen(
                [sys.executable, "-m", "testbed.cli", "node", kind, *where, str(DEMO)],
                cwd=ROOT, env={**env, **own}, stdout=open(logs / f"{node}.log", "ab"),
                stderr=subprocess.STDOUT, start_new_session=True)
        driver = broker.security.credentials(DRIVER).environment()
        done = clearsim("drive", str(DEMO), "--out", str(tmp_path / "out"),
                        env={**env, **driver})
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        codes = {node: process.wait(timeout=60) for node, process in processes.items()}
    assert codes == {node: 0 for node in nodes}
    claims = json.loads((tmp_path / "out" / "claims.json").read_text())
    assert len(claims) == 12 and all(c["agreed"] for c in claims)
    assert decisions(tmp_path / "out") == decisions(single)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["delivery"]["ok"] and not summary["invariant_violations"]
    for node in nodes:      # no node was ever refused anything on the way
        text = (logs / f"{node}.log").read_text()
        assert "AuthorizationFailed" not in text and "cannot connect" not in text, \
            (node, text[-1500:])
        assert f"{node}: started" in text

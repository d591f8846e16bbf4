"""The ACL plan (``clearsim.bus.security``): each node reads only its own topic in its own
group and writes only where its messages go; the credentials a client takes from its
environment. The plan is checked against the routes the handlers really take: every
record of an in-process run of the demo (and of a run whose patients are reimbursed by hand
across regions) was sent by a principal the plan lets write to its topic, and every
consumer read only what its group's principal may read."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearsim.bus.memory import MemoryBus
from clearsim.bus.security import (DRIVER, ENV_MECHANISM, ENV_PASSWORD, ENV_USER, AclPlan,
                                   Credentials, Grant, Operation, Resource,
                                   credentials_from_env, plan, plan_for)
from clearsim.errors import ClearsimError, ErrorCode
from clearsim.sim.claims import load_claims
from clearsim.sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.toml"
REGIONS = ("110000", "310000", "360400", "440100")
P = "p"

READ, WRITE, DESCRIBE = Operation.READ, Operation.WRITE, Operation.DESCRIBE
TOPIC, GROUP = Resource.TOPIC, Resource.GROUP


def demo_plan(prefix: str = P) -> AclPlan:
    scenario = load_scenario(DEMO)
    return plan_for(scenario, load_claims(scenario.sim.claims), prefix)


# -- the rules -------------------------------------------------------------------------------

def test_every_node_reads_only_its_own_topic_in_its_own_group():
    the_plan = demo_plan()
    assert the_plan.users() == sorted(["hub", "sim"] + [f"{kind}-{code}" for code in REGIONS
                                                       for kind in ("region", "hospitals")])
    assert the_plan.reads("hub") == {"p.hub"} and the_plan.groups("hub") == {"p.hub"}
    for code in REGIONS:
        assert the_plan.reads(f"region-{code}") == {f"p.region.{code}", "p.policies"}
        assert the_plan.groups(f"region-{code}") == {f"p.region.{code}"}
        assert the_plan.reads(f"hospitals-{code}") == {f"p.hospitals.{code}"}
        assert the_plan.groups(f"hospitals-{code}") == {f"p.hospitals.{code}"}
    assert the_plan.reads(DRIVER) == set() and the_plan.groups(DRIVER) == set()


def test_the_hub_writes_to_every_region_and_the_policy_table_only():
    assert demo_plan().writes("hub") == ({"p.policies", "p.dlq"}
                                         | {f"p.region.{c}" for c in REGIONS})


def test_a_hospital_node_writes_to_its_region_and_to_the_regions_insuring_its_patients():
    """Its platform gets everything; a patient with no direct settlement is reimbursed at
    home, filed by the hospital node with the insuring region. In the demo Jiujiang's
    hospital treats one Beijing insured (C-003), Guangzhou's only Shanghai's (C-010)."""
    the_plan = demo_plan()
    assert the_plan.writes("hospitals-360400") == {"p.region.360400", "p.region.110000",
                                                   "p.dlq"}
    assert the_plan.writes("hospitals-440100") == {"p.region.440100", "p.region.310000",
                                                   "p.dlq"}
    assert the_plan.writes("hospitals-110000") == {"p.region.110000", "p.region.310000",
                                                   "p.region.360400", "p.dlq"}
    for code in REGIONS:
        writes = the_plan.writes(f"hospitals-{code}")
        assert "p.hub" not in writes and "p.policies" not in writes
        assert not any(".hospitals." in t for t in writes)


def test_a_region_writes_to_the_hub_and_to_the_hospitals_that_treat_its_insured():
    the_plan = demo_plan()
    assert the_plan.writes("region-440100") == {"p.hub", "p.hospitals.440100",
                                                "p.hospitals.310000", "p.dlq"}
    assert the_plan.writes("region-360400") == {"p.hub", "p.hospitals.360400",
                                                "p.hospitals.110000", "p.hospitals.310000",
                                                "p.dlq"}
    for code in REGIONS:
        writes = the_plan.writes(f"region-{code}")
        assert not any(".region." in t for t in writes) and "p.policies" not in writes


def test_the_driver_writes_where_the_outside_world_sends_and_only_sees_the_policy_table():
    the_plan = demo_plan()
    assert the_plan.writes(DRIVER) == ({"p.hub"} | {f"p.region.{c}" for c in REGIONS}
                                       | {f"p.hospitals.{c}" for c in REGIONS})
    assert the_plan.allows(DRIVER, DESCRIBE, TOPIC, "p.policies")
    assert the_plan.allows(DRIVER, DESCRIBE, TOPIC, "p.dlq")
    assert not the_plan.allows(DRIVER, WRITE, TOPIC, "p.dlq")
    assert not the_plan.allows(DRIVER, READ, TOPIC, "p.policies")
    assert not the_plan.allows(DRIVER, WRITE, TOPIC, "p.policies")


def test_every_topic_of_the_run_is_in_the_plan_and_every_grant_names_one():
    the_plan = demo_plan()
    assert sorted(the_plan.topics) == sorted(
        ["p.hub", "p.policies", "p.dlq"] + [f"p.{kind}.{c}" for kind in ("region", "hospitals")
                                   for c in REGIONS])
    groups = {g.name for g in the_plan.grants if g.resource is GROUP}
    topics = {g.name for g in the_plan.grants if g.resource is TOPIC}
    assert topics == set(the_plan.topics)
    assert groups == set(the_plan.topics) - {"p.policies", "p.dlq"}    # one per node


def test_read_or_write_implies_describe_as_on_kafka():
    the_plan = demo_plan()
    assert the_plan.allows("hub", DESCRIBE, TOPIC, "p.hub")
    assert the_plan.allows("hub", DESCRIBE, TOPIC, "p.region.110000")
    assert not the_plan.allows("hub", DESCRIBE, TOPIC, "p.hospitals.110000")
    assert not the_plan.allows("hub", READ, GROUP, "p.region.110000")


def test_without_claims_any_region_may_send_its_insured_anywhere():
    """A generated workload's patients come from any region: every hospital node may file
    manual reimbursements with every region, and every region answer every hospital node."""
    the_plan = plan(P, REGIONS, ["110000", "360400"], None)
    every_region = {f"p.region.{c}" for c in REGIONS}
    assert the_plan.writes("hospitals-110000") == every_region | {"p.dlq"}
    assert the_plan.writes("region-440100") == {"p.hub", "p.hospitals.110000",
                                                "p.hospitals.360400", "p.dlq"}
    assert "p.hospitals.310000" not in the_plan.topics       # no hospital node there
    assert the_plan.users() == sorted(["hub", "sim", "hospitals-110000", "hospitals-360400"]
                                      + [f"region-{c}" for c in REGIONS])


def test_hospital_nodes_of_unknown_regions_are_refused():
    with pytest.raises(ValueError, match="999999"):
        plan(P, REGIONS, ["999999"], None)


def test_the_plan_is_derived_from_the_prefix():
    assert all(g.name.startswith("bed1.") for g in demo_plan("bed1").grants)
    assert str(Grant("hub", READ, TOPIC, "bed1.hub")) == "User:hub READ TOPIC bed1.hub"


# -- the routes the handlers really take -------------------------------------------------------

class RecordingBus(MemoryBus):
    """The in-process bus, noting who sent each record where and who read what."""

    def __init__(self, default_partitions: int = 3):
        super().__init__(default_partitions)
        self.sent: set[tuple[str, str]] = set()          # (sender, topic)
        self.read: set[tuple[str, str]] = set()          # (group, topic)

    def _append(self, topic, key, value, headers) -> None:
        self.sent.add((dict(headers)["sender"].decode(), topic))
        super()._append(topic, key, value, headers)

    def consumer(self, group, topics):
        self.read |= {(group, topic) for topic in topics}
        return super().consumer(group, topics)


def routes(monkeypatch, tmp_path, scenario_path: Path) -> tuple[RecordingBus, AclPlan, str]:
    from testbed import runner

    scenario = load_scenario(scenario_path)
    claims = load_claims(scenario.sim.claims)
    bus = RecordingBus()
    monkeypatch.setattr(runner, "connect", lambda *args, **kwargs: bus)
    sim = runner.Simulation(scenario, claims, runner.RunOptions(workdir=tmp_path, timeout=120))
    result = sim.run()
    assert result.ok, result.summary["invariant_violations"]
    return bus, plan_for(scenario, claims, sim.prefix), sim.prefix


@pytest.mark.parametrize("scenario", ["demo.toml", "faults/identity.toml"])
def test_every_record_of_a_run_is_one_its_sender_may_write(monkeypatch, tmp_path, scenario):
    bus, the_plan, prefix = routes(monkeypatch, tmp_path, ROOT / "scenarios" / scenario)
    assert bus.sent and bus.read
    refused = sorted((sender, topic) for sender, topic in bus.sent
                     if not the_plan.allows(sender, WRITE, TOPIC, topic))
    assert refused == []
    owner = {group: user for user in the_plan.users() for group in the_plan.groups(user)}
    for group, topic in sorted(bus.read):
        assert group in owner, group
        assert the_plan.allows(owner[group], READ, TOPIC, topic), (group, topic)
    if scenario == "faults/identity.toml":    # the patients reimbursed by hand at home
        assert ("hospitals-110000", f"{prefix}.region.310000") in bus.sent


# -- credentials from the environment ------------------------------------------------------

def test_no_credentials_means_plaintext():
    assert credentials_from_env({}) is None
    assert credentials_from_env({ENV_USER: "", ENV_PASSWORD: ""}) is None


def test_credentials_come_from_the_environment_with_scram_sha_256_by_default():
    found = credentials_from_env({ENV_USER: "hospitals-360400", ENV_PASSWORD: "s3cret-pw"})
    assert found == Credentials("hospitals-360400", "s3cret-pw", "SCRAM-SHA-256")
    assert found.principal == "User:hospitals-360400"
    assert "s3cret" not in repr(found)
    assert credentials_from_env(found.environment()) == found
    other = credentials_from_env({ENV_USER: "hub", ENV_PASSWORD: "pw",
                                  ENV_MECHANISM: "SCRAM-SHA-512"})
    assert other.mechanism == "SCRAM-SHA-512"


@pytest.mark.parametrize("env, field", [
    ({ENV_USER: "hub"}, ENV_PASSWORD),
    ({ENV_PASSWORD: "pw"}, ENV_USER),
    ({ENV_USER: "hub", ENV_PASSWORD: "pw", ENV_MECHANISM: "PLAIN"}, ENV_MECHANISM),
    ({ENV_USER: "hub", ENV_PASSWORD: 'p"w'}, ENV_PASSWORD),
    ({ENV_USER: "hub,admin", ENV_PASSWORD: "pw"}, ENV_USER),
])
def test_incomplete_or_unusable_credentials_are_refused_with_a_code(env, field):
    with pytest.raises(ClearsimError) as refused:
        credentials_from_env(env)
    assert refused.value.code is ErrorCode.INVALID_INPUT
    assert refused.value.rejection.field == field


def test_a_kafka_bus_takes_its_credentials_from_the_environment(monkeypatch):
    from clearsim.bus.kafka import KafkaBus, security_settings

    monkeypatch.setenv(ENV_USER, "region-110000")
    monkeypatch.setenv(ENV_PASSWORD, "pw")
    bus = KafkaBus("127.0.0.1:1")               # no connection is made until it is used
    assert bus.credentials == Credentials("region-110000", "pw")
    assert security_settings(bus.credentials) == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "region-110000", "sasl_plain_password": "pw"}
    assert KafkaBus("127.0.0.1:1", credentials=None).credentials is None
    monkeypatch.delenv(ENV_USER)
    monkeypatch.delenv(ENV_PASSWORD)
    assert KafkaBus("127.0.0.1:1").credentials is None
    assert security_settings(None) == {"security_protocol": "PLAINTEXT"}


# -- the broker's side ---------------------------------------------------------------------------

def test_a_secured_broker_formats_its_users_and_refuses_what_no_acl_allows(tmp_path):
    from clearsim.testing.kafka import KafkaBroker, Security

    security = Security.generate(["hub", "region-110000"])
    broker = KafkaBroker(tmp_path, security=security)
    broker.port, broker.controller_port = 9092, 9093
    props = dict(line.split("=", 1) for line in broker._properties().read_text().splitlines()
                 if line)
    assert props["listeners"] == "SASL_PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["listener.security.protocol.map"] == \
        "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-256"
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-256"
    assert props["authorizer.class.name"] == \
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin"
    arguments = security.format_arguments()
    assert arguments[::2] == ["--add-scram"] * 3
    assert arguments[1] == f"SCRAM-SHA-256=[name=admin,password={security.admin.password}]"
    assert {a.split("name=")[1].split(",")[0] for a in arguments[1::2]} == \
        {"admin", "hub", "region-110000"}
    plain = KafkaBroker(tmp_path / "plain")
    plain.workdir.mkdir()
    plain.port, plain.controller_port = 9092, 9093
    text = plain._properties().read_text()
    assert "PLAINTEXT://127.0.0.1:9092" in text and "sasl" not in text
    assert "authorizer" not in text

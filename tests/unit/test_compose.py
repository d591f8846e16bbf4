"""compose/ is for machines with a Docker engine; here it is checked as far as this machine
allows: the compose file as YAML and wiring (the 3-broker cluster, one service per node of
the demo, every command one the ``clearsim`` command accepts and the contract names), the
Prometheus configuration (``promtool check config`` where Debian's prometheus package is
installed; required under CI=true), the Grafana datasource and dashboard (every panel's
expression names only families the nodes expose), the security of the cluster (SASL/SCRAM,
ACLs, each node speaking as itself with its own credentials, the brokers' start script
writing those settings and creating those users when it formats the storage), and
``docker compose config`` where a Docker client with the compose plugin exists."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from clearsim.messages import HUB, hospitals_node, region_node
from clearsim.sim.claims import Claim, load_claims
from clearsim.sim.scenario import load_scenario
from conftest import program
from testbed.topology import build_topology

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"
SCENARIO = "scenarios/demo.toml"

# The families the dashboard shows, in one place: what the issue asks a test bed to watch
# (messages by kind, rejections by code, duplicates, retries, consumer lag, outbox depth,
# handling time, settlement / reconciliation / payback latency, open cases, receivables,
# clearing amounts).
DASHBOARD_FAMILIES = (
    "clearsim_messages_received", "clearsim_messages_sent", "clearsim_messages_rejected",
    "clearsim_duplicates_absorbed", "clearsim_retries", "clearsim_consumer_lag_records",
    "clearsim_outbox_messages", "clearsim_message_handling_seconds",
    "clearsim_settlement_latency_seconds", "clearsim_reconciliation_latency_simulated_seconds",
    "clearsim_payback_latency_simulated_seconds", "clearsim_reconciliation_cases_open",
    "clearsim_receivables_yuan", "clearsim_clearing_yuan",
)

# The contract of the node processes and the driver: subcommands and their flags.
COMMON = {"--kafka", "--db", "--prefix", "--metrics-port", "--partitions"}
CLAIM_OPTIONS = {"--claims", "--workload", "--days"}
SUBCOMMANDS = {
    ("node", "hub"): COMMON | CLAIM_OPTIONS,
    ("node", "region"): COMMON | CLAIM_OPTIONS | {"--code"},
    ("node", "hospitals"): COMMON | CLAIM_OPTIONS | {"--region"},
    ("drive",): {"--kafka", "--db", "--prefix", "--out", "--workload", "--days", "--claims"},
}
SWITCHES = {"--workload"}          # flags without a value
BROKERS = ("kafka-1", "kafka-2", "kafka-3")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads((COMPOSE / "grafana" / "dashboards" / "clearsim.json").read_text())


def demo_nodes() -> set[str]:
    """The node ids of the demo scenario: the hub, each region, each region's hospitals."""
    scenario = load_scenario(ROOT / SCENARIO)
    claims = [c for c in load_claims(scenario.sim.claims)
              if isinstance(c, Claim) and c.hospital in scenario.hospitals]
    topology = build_topology(scenario, claims)
    return ({HUB} | {region_node(code) for code in topology.regions}
            | {hospitals_node(code) for code in topology.hospitals})


def split(command: list[str]) -> tuple[tuple[str, ...], str, dict[str, str | None]]:
    """A clearsim command as (subcommand, scenario, {flag: value})."""
    assert command[0] == "clearsim", command
    words = command[1:]
    sub = tuple(words[:2]) if words[0] == "node" else tuple(words[:1])
    rest = words[len(sub):]
    scenario, rest = rest[0], rest[1:]
    flags: dict[str, str | None] = {}
    while rest:
        flag, rest = rest[0], rest[1:]
        assert flag.startswith("--"), (command, flag)
        assert flag not in flags, (command, flag)
        if flag in SWITCHES:
            flags[flag] = None
        else:
            flags[flag], rest = rest[0], rest[1:]
    return sub, scenario, flags


def clearsim_services(compose: dict) -> dict[str, list[str]]:
    return {name: service["command"] for name, service in compose["services"].items()
            if service.get("command", [None])[0] == "clearsim"}


# -- the cluster -----------------------------------------------------------------------

def test_three_kraft_brokers_replicate_every_topic_three_times(compose):
    services = compose["services"]
    ids, cluster_ids = set(), set()
    for name in BROKERS:
        broker = services[name]
        env = broker["environment"]
        assert broker["image"].startswith("apache/kafka:")
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == \
            "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"SASL_PLAINTEXT://{name}:9092"
        assert int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == 3
        assert int(env["KAFKA_MIN_INSYNC_REPLICAS"]) == 2
        assert int(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == 3
        assert int(env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"]) == 3
        assert int(env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"]) == 2
        assert "healthcheck" in broker
        ids.add(int(env["KAFKA_NODE_ID"]))
        cluster_ids.add(env["CLUSTER_ID"])
    assert ids == {1, 2, 3}
    assert len(cluster_ids) == 1          # one cluster, formatted alike on every broker
    assert services["postgres"]["image"].startswith("postgres:")


# -- the nodes and the driver ----------------------------------------------------------

def test_one_service_per_node_of_the_demo_plus_the_driver(compose):
    commands = clearsim_services(compose)
    assert set(commands) == demo_nodes() | {"driver"}
    for name, command in commands.items():
        sub, scenario, flags = split(command)
        assert (ROOT / scenario).exists()
        if name == "driver":
            assert sub == ("drive",)
            continue
        assert sub == ("node", name.split("-")[0])   # hub, region, hospitals
        if sub == ("node", "region"):
            assert region_node(flags["--code"]) == name
        if sub == ("node", "hospitals"):
            assert hospitals_node(flags["--region"]) == name


def test_every_command_uses_only_the_contracts_subcommands_and_flags(compose):
    bootstrap = ",".join(f"{b}:9092" for b in BROKERS)
    for name, command in clearsim_services(compose).items():
        sub, _, flags = split(command)
        assert sub in SUBCOMMANDS, (name, sub)
        assert set(flags) <= SUBCOMMANDS[sub], (name, set(flags) - SUBCOMMANDS[sub])
        assert flags["--kafka"] == bootstrap, name                # every broker named
        assert flags["--db"].startswith("postgresql+psycopg://"), name
        assert flags["--db"].split("@")[1].startswith("postgres:5432/"), name
        assert flags["--prefix"] == "demo", name                   # one test bed
        if sub[0] == "node":
            assert int(flags["--metrics-port"]) > 0, name


def test_every_command_is_one_the_clearsim_command_accepts(compose):
    from testbed.cli import build_parser

    parser = build_parser()
    for name, command in clearsim_services(compose).items():
        args = parser.parse_args(command[1:])
        assert str(args.scenario) == SCENARIO, name


def test_the_node_services_wait_for_the_cluster_and_the_database(compose):
    services = compose["services"]
    for name in demo_nodes():
        depends = services[name]["depends_on"]
        for needed in (*BROKERS, "postgres"):
            assert depends[needed]["condition"] == "service_healthy", (name, needed)
        assert depends["acls"]["condition"] == "service_completed_successfully", name
        build = services[name]["build"]
        assert (ROOT / "compose" / build["dockerfile"].split("/")[-1]).exists()
    assert set(services["driver"]["depends_on"]) == demo_nodes()


def test_the_image_copies_every_package_the_project_installs():
    dockerfile = (COMPOSE / "Dockerfile").read_text()
    for part in ("clearsim", "hub", "region_node", "hospital_node", "testbed", "scenarios"):
        assert f"COPY {part} {part}" in dockerfile
    assert "COPY schemas" not in dockerfile      # the schemas ship inside clearsim/


# -- who may say what ----------------------------------------------------------------------

CREDENTIALS = COMPOSE / "credentials"


def credentials_file(path: Path):
    """The credentials an env file gives (``clearsim.bus.security`` checks them)."""
    from clearsim.bus.security import credentials_from_env

    env = dict(line.split("=", 1) for line in path.read_text().splitlines()
               if line and not line.startswith("#"))
    return credentials_from_env(env)


def test_the_brokers_authenticate_with_scram_and_allow_only_what_an_acl_allows(compose):
    for name in BROKERS:
        broker = compose["services"][name]
        env = broker["environment"]
        assert env["KAFKA_LISTENERS"] == "SASL_PLAINTEXT://:9092,CONTROLLER://:9093"
        assert env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"] == \
            "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
        assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == "SASL_PLAINTEXT"
        assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-256"
        assert env["KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL"] == "SCRAM-SHA-256"
        assert env["KAFKA_SASL_MECHANISM_CONTROLLER_PROTOCOL"] == "PLAIN"
        assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == \
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
        assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
        assert env["KAFKA_SUPER_USERS"] == "User:admin"
        assert credentials_file(COMPOSE / broker["env_file"]).user == "admin"
        assert broker["entrypoint"] == ["bash", "/etc/clearsim/start-broker.sh"]
        assert set(broker["volumes"]) == {
            "./kafka/start-broker.sh:/etc/clearsim/start-broker.sh:ro",
            "./credentials:/etc/clearsim/credentials:ro"}
        assert "--command-config /tmp/clearsim/admin.properties" in \
            broker["healthcheck"]["test"][1]


def test_every_principal_of_the_demo_has_its_credentials_and_nothing_else_does():
    from clearsim.bus.security import ADMIN, plan_for

    scenario = load_scenario(ROOT / SCENARIO)
    wanted = plan_for(scenario, load_claims(scenario.sim.claims), "demo").users() + [ADMIN]
    found = {path.stem: credentials_file(path) for path in CREDENTIALS.glob("*.env")}
    assert sorted(found) == sorted(wanted)
    for stem, credentials in found.items():
        assert credentials.user == stem and credentials.mechanism == "SCRAM-SHA-256"
    passwords = [c.password for c in found.values()]
    assert len(set(passwords)) == len(passwords) and min(map(len, passwords)) >= 16


def test_every_node_and_the_driver_speak_as_themselves(compose):
    services = compose["services"]
    for name in clearsim_services(compose):
        user = "sim" if name == "driver" else name
        assert services[name]["env_file"] == f"credentials/{user}.env", name
        assert credentials_file(COMPOSE / services[name]["env_file"]).user == user


def test_the_acls_service_grants_the_demos_plan_as_the_admin(compose, capsys):
    from clearsim.bus.security import main

    acls = compose["services"]["acls"]
    assert credentials_file(COMPOSE / acls["env_file"]).user == "admin"
    assert acls["restart"] == "on-failure"
    for broker in BROKERS:
        assert acls["depends_on"][broker]["condition"] == "service_healthy"
    command = acls["command"]
    assert command[:3] == ["python", "-m", "clearsim.bus.security"]
    assert command[3] == SCENARIO
    flags = dict(zip(command[4::2], command[5::2]))
    assert flags == {"--kafka": ",".join(f"{b}:9092" for b in BROKERS), "--prefix": "demo"}
    cwd = os.getcwd()
    os.chdir(ROOT)                   # the image's working directory holds scenarios/
    try:
        assert main([*command[3:], "--dry-run"]) == 0
    finally:
        os.chdir(cwd)
    printed = capsys.readouterr().out.splitlines()
    assert "User:hospitals-360400 WRITE TOPIC demo.region.360400" in printed
    assert not any(line.startswith("User:hospitals-") and "demo.hub" in line
                   for line in printed)


def test_the_brokers_start_script_writes_the_security_settings_and_creates_every_user(
        compose, tmp_path):
    """The script, run as the broker's container runs it (its environment, its credentials
    file and the credentials directory), with Kafka's two scripts replaced by ones that
    note what they were given."""
    program("bash", package="bash")
    home = tmp_path / "kafka"
    (home / "bin").mkdir(parents=True)
    for script in ("kafka-storage.sh", "kafka-server-start.sh"):
        (home / "bin" / script).write_text(
            f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "{tmp_path}/{script}.args"\n')
        (home / "bin" / script).chmod(0o755)
    broker = compose["services"]["kafka-1"]
    admin = credentials_file(COMPOSE / broker["env_file"])
    env = {"PATH": os.environ["PATH"], **{k: str(v) for k, v in broker["environment"].items()},
           **admin.environment(), "KAFKA_HOME": str(home), "KAFKA_HEAP_OPTS": "-Xmx1g",
           "CLEARSIM_CREDENTIALS": str(CREDENTIALS),
           "CLEARSIM_SERVER_PROPERTIES": str(tmp_path / "server.properties"),
           "CLEARSIM_ADMIN_PROPERTIES": str(tmp_path / "admin.properties")}
    done = subprocess.run(["bash", str(COMPOSE / "kafka" / "start-broker.sh")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    props = dict(line.split("=", 1) for line in
                 (tmp_path / "server.properties").read_text().splitlines())
    assert props["node.id"] == "1"
    assert props["advertised.listeners"] == "SASL_PLAINTEXT://kafka-1:9092"
    assert props["listener.security.protocol.map"] == \
        "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
    assert props["authorizer.class.name"] == \
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin"
    assert props["listener.name.controller.sasl.enabled.mechanisms"] == "PLAIN"
    assert props["listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="admin" password="{admin.password}";')
    assert f'user_admin="{admin.password}"' in \
        props["listener.name.controller.plain.sasl.jaas.config"]
    assert "heap.opts" not in " ".join(props) and "kafka.home" not in props
    storage = (tmp_path / "kafka-storage.sh.args").read_text().splitlines()
    assert storage[:6] == ["format", "--ignore-formatted", "--cluster-id",
                           broker["environment"]["CLUSTER_ID"], "-c",
                           str(tmp_path / "server.properties")]
    users = [storage[i + 1] for i, arg in enumerate(storage) if arg == "--add-scram"]
    expected = [credentials_file(path) for path in sorted(CREDENTIALS.glob("*.env"))]
    assert sorted(users) == sorted(f"SCRAM-SHA-256=[name={c.user},password={c.password}]"
                                   for c in expected)
    assert (tmp_path / "kafka-server-start.sh.args").read_text().splitlines() == \
        [str(tmp_path / "server.properties")]
    client = (tmp_path / "admin.properties").read_text()
    assert "security.protocol=SASL_PLAINTEXT" in client and "sasl.mechanism=SCRAM-SHA-256" in client


# -- Prometheus --------------------------------------------------------------------------

def scrape_targets() -> set[str]:
    config = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    return {target for job in config["scrape_configs"]
            for static in job["static_configs"] for target in static["targets"]}


def test_prometheus_scrapes_every_node_on_its_metrics_port(compose):
    nodes = {name: split(command)[2]["--metrics-port"]
             for name, command in clearsim_services(compose).items() if name != "driver"}
    assert scrape_targets() == {f"{name}:{port}" for name, port in nodes.items()}
    prometheus = compose["services"]["prometheus"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]


def test_promtool_accepts_the_prometheus_configuration():
    promtool = program("promtool", package="prometheus")
    checked = subprocess.run([promtool, "check", "config", str(COMPOSE / "prometheus.yml")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# -- Grafana -----------------------------------------------------------------------------

def exposed_samples() -> set[str]:
    """Every sample name the nodes expose: the sensor's families and each node package's
    families read at scrape time (a counter's ``_total``, a histogram's ``_bucket``,
    ``_sum`` and ``_count``)."""
    from prometheus_client import CollectorRegistry

    from clearsim import metrics
    from hospital_node import metrics as hospital_metrics
    from hub import metrics as hub_metrics
    from region_node import metrics as region_metrics

    registry = CollectorRegistry()
    metrics.PrometheusSensor(registry)
    families = [(f.name, f.type) for f in registry.collect()]
    families += [(f.name, f.type) for f in (*metrics.NODE_FAMILIES, *hub_metrics.FAMILIES,
                                            *region_metrics.families("360400"),
                                            *hospital_metrics.families(None))]
    suffixes = {"counter": ("_total",), "gauge": ("",),
                "histogram": ("_bucket", "_sum", "_count")}
    return {name + suffix for name, kind in families for suffix in suffixes[kind]}


def panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_every_panel_asks_for_families_the_nodes_expose(dashboard):
    exposed = exposed_samples()
    shown = set()
    for panel in panels(dashboard):
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert expr.count("(") == expr.count(")"), (panel["title"], expr)
            names = set(re.findall(r"\bclearsim_[a-z0-9_]+", expr))
            assert names, (panel["title"], expr)
            assert names <= exposed, (panel["title"], names - exposed)
            shown |= names
    for family in DASHBOARD_FAMILIES:
        assert any(name.startswith(family) for name in shown), family


def test_the_dashboard_reads_the_provisioned_datasource(compose, dashboard):
    provisioned = yaml.safe_load(
        (COMPOSE / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = provisioned["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    for panel in panels(dashboard):
        for ref in (panel["datasource"], *(t["datasource"] for t in panel["targets"])):
            assert ref == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    # Grafana finds the dashboard where the provider looks, mounted from compose/grafana.
    providers = yaml.safe_load(
        (COMPOSE / "grafana" / "provisioning" / "dashboards" / "clearsim.yml").read_text())
    (provider,) = providers["providers"]
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"


# -- Docker itself, where it is there ------------------------------------------------------

def test_docker_compose_accepts_the_file():
    """A plain skip even under CI=true: the project's machines have no Docker engine, and
    the checks above cover the file as far as a machine without one can."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no Docker client here")
    if subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the Docker client here has no compose plugin")
    checked = subprocess.run([docker, "compose", "-f", str(COMPOSE / "docker-compose.yml"),
                              "config", "--quiet"], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr

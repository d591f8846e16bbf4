"""compose/ is for machines with a Docker engine; here it is checked as far as this machine
allows: the compose file as YAML and wiring (the 3-broker cluster, one service per node of
the demo, every command one the ``clearsim`` command accepts and the contract names), the
Prometheus configuration (``promtool check config`` where Debian's prometheus package is
installed; required under CI=true), the Grafana datasource and dashboard (every panel's
expression names only families the nodes expose), and ``docker compose config`` where a
Docker client with the compose plugin exists."""

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
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
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
        build = services[name]["build"]
        assert (ROOT / "compose" / build["dockerfile"].split("/")[-1]).exists()
    assert set(services["driver"]["depends_on"]) == demo_nodes()


def test_the_image_copies_every_package_the_project_installs():
    dockerfile = (COMPOSE / "Dockerfile").read_text()
    for part in ("clearsim", "hub", "region_node", "hospital_node", "testbed", "scenarios"):
        assert f"COPY {part} {part}" in dockerfile
    assert "COPY schemas" not in dockerfile      # the schemas ship inside clearsim/


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
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but promtool is missing (tools/setup-system.sh installs "
                        "Debian's prometheus package)", pytrace=False)
        pytest.skip("promtool is not installed (Debian's prometheus package)")
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
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no Docker client here")
    if subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the Docker client here has no compose plugin")
    checked = subprocess.run([docker, "compose", "-f", str(COMPOSE / "docker-compose.yml"),
                              "config", "--quiet"], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr

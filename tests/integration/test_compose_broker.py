"""The compose cluster's broker security, on a real broker without Docker.

compose/kafka/start-broker.sh is run as a broker container runs it: the environment of the
``kafka-1`` service (its listeners, addresses and quorum moved to free ports on 127.0.0.1,
its log directory to a temporary one and its replication cut to this one broker; every
security setting as it is), the admin's credentials file and the credentials directory,
with Kafka's two scripts standing for the image's (the assembled jars behind them). The
broker must start with the users the script creates at format time, answer the health
check's command with the admin's client properties, take the ``acls`` service's command,
and then hold each node to its plan.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from clearsim.bus.base import BusError
from clearsim.bus.security import credentials_from_env, plan_for
from clearsim.sim.claims import load_claims
from clearsim.sim.scenario import load_scenario

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"


def env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines()
                if line and not line.startswith("#"))


def credentials(user: str):
    return credentials_from_env(env_file(COMPOSE / "credentials" / f"{user}.env"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """kafka-1 of compose/, alone, started by its own start script; its bootstrap."""
    from clearsim.testing.kafka import (TOOLS, BrokerUnavailable, assemble, cluster_id,
                                        free_ports)
    from tests.conftest import unavailable

    try:
        libs = assemble()
    except BrokerUnavailable as exc:
        unavailable(f"no Kafka broker could be assembled: {exc}")
    work = tmp_path_factory.mktemp("compose-broker")
    home = work / "kafka"
    (home / "bin").mkdir(parents=True)
    java = f'java -cp "{libs}/*" -Dlog4j.configuration=file:{TOOLS / "log4j.properties"}'
    for script, main in (("kafka-storage.sh", "kafka.tools.StorageTool"),
                         ("kafka-server-start.sh", "-Xmx384m -Xms384m -XX:+UseSerialGC "
                                                   "kafka.Kafka")):
        (home / "bin" / script).write_text(f'#!/usr/bin/env bash\nexec {java} {main} "$@"\n')
        (home / "bin" / script).chmod(0o755)
    service = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())["services"]["kafka-1"]
    port, controller = free_ports(2)
    env = {**{k: str(v) for k, v in service["environment"].items()},
           **env_file(COMPOSE / service["env_file"]),
           "PATH": os.environ["PATH"], "KAFKA_HOME": str(home), "CLUSTER_ID": cluster_id(),
           "CLEARSIM_CREDENTIALS": str(COMPOSE / "credentials"),
           "CLEARSIM_SERVER_PROPERTIES": str(work / "server.properties"),
           "CLEARSIM_ADMIN_PROPERTIES": str(work / "admin.properties"),
           # where this machine differs from a compose network of three brokers
           "KAFKA_LISTENERS": f"SASL_PLAINTEXT://127.0.0.1:{port},"
                              f"CONTROLLER://127.0.0.1:{controller}",
           "KAFKA_ADVERTISED_LISTENERS": f"SASL_PLAINTEXT://127.0.0.1:{port}",
           "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@127.0.0.1:{controller}",
           "KAFKA_LOG_DIRS": str(work / "logs"),
           "KAFKA_DEFAULT_REPLICATION_FACTOR": "1", "KAFKA_MIN_INSYNC_REPLICAS": "1",
           "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
           "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
           "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1"}
    log = open(work / "broker.log", "wb")
    process = subprocess.Popen(["bash", str(COMPOSE / "kafka" / "start-broker.sh")], env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    bootstrap = f"127.0.0.1:{port}"
    try:
        healthy(bootstrap, process, work)
        yield bootstrap, libs, work
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def healthy(bootstrap: str, process, work: Path, timeout: float = 180) -> None:
    from clearsim.bus.kafka import KafkaBus
    from tests.conftest import unavailable

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            unavailable("the compose broker's start script ended: "
                        + (work / "broker.log").read_text()[-3000:])
        bus = KafkaBus(bootstrap, credentials=credentials("admin"))
        try:
            bus.admin().list_topics()
            return
        except BusError:
            if time.monotonic() > deadline:
                unavailable("the compose broker did not answer: "
                            + (work / "broker.log").read_text()[-3000:])
            time.sleep(1)
        finally:
            bus.close()


def test_the_health_check_authenticates_as_the_admin(broker):
    bootstrap, libs, work = broker
    done = subprocess.run(["java", "-cp", f"{libs}/*", "kafka.admin.BrokerApiVersionsCommand",
                           "--bootstrap-server", bootstrap,
                           "--command-config", str(work / "admin.properties")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert bootstrap in done.stdout


def test_the_acls_service_then_each_node_may_do_only_what_its_plan_allows(broker):
    from clearsim.bus.kafka import KafkaBus

    bootstrap, _, _ = broker
    admin = credentials("admin")
    done = subprocess.run([sys.executable, "-m", "clearsim.bus.security",
                           "scenarios/demo.toml", "--kafka", bootstrap, "--prefix", "demo"],
                          cwd=ROOT, env={**os.environ, **admin.environment()},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    scenario = load_scenario(ROOT / "scenarios" / "demo.toml")
    the_plan = plan_for(scenario, load_claims(scenario.sim.claims), "demo")
    bus = KafkaBus(bootstrap, credentials=admin)
    try:
        assert {g for g in bus.granted() if g.name.startswith("demo.")} == set(the_plan.grants)
    finally:
        bus.close()
    # Every user the script created from the credentials files can authenticate; each
    # writes where its plan allows and nowhere else (a sample of the topics).
    for user in ("hub", "region-110000", "hospitals-360400", "sim"):
        node = KafkaBus(bootstrap, credentials=credentials(user), client_id=f"probe-{user}")
        producer = node.producer()
        try:
            for topic in ("demo.hub", "demo.region.110000", "demo.hospitals.110000"):
                try:
                    producer.send(topic, b"C-001", b"probe", [("msgid", b"m")])
                    producer.flush()
                    accepted = True
                except BusError as exc:
                    assert "TopicAuthorizationFailedError" in str(exc), exc
                    accepted = False
                assert accepted == (topic in the_plan.writes(user)), (user, topic)
        finally:
            producer.close()
            node.close()

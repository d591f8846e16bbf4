"""Real Apache Kafka brokers (KRaft) on 127.0.0.1: one broker, or a cluster of several.

Assembled from Maven Central by ``tools/kafka/assemble.sh``; used by the tests and by
``clearsim run --kafka local``. Storage is formatted with ``kafka.tools.StorageTool`` and
``kafka.Kafka`` is started with a small heap on free ports; ``start`` returns once the
broker answers a metadata request, ``stop`` ends it (SIGTERM, then SIGKILL). ``restart``
stops it and starts it again on the same ports and the same data directory, as an operator
restarting a broker would: topics, records and committed offsets survive.

``KafkaCluster`` runs N such brokers on one machine, each a broker and a controller in one
JVM with its own ports and log directory, voting in one KRaft quorum. With three or more,
topics are replicated three times and a write needs two in-sync replicas
(``min.insync.replicas=2``), so any one broker can be stopped (``stop_broker``) and started
again (``start_broker``) while clients carry on.

Given a ``Security``, a broker (or every broker of a cluster) authenticates every client:
its client listener speaks SASL_PLAINTEXT with SCRAM, the users' credentials are created
when its storage is formatted (``StorageTool format --add-scram``), the brokers speak to
each other on that listener as the admin, and to the controllers with SASL/PLAIN as the
admin (the controller listener knows no SCRAM: its credentials live in the metadata the
controllers serve). ``StandardAuthorizer`` with ``allow.everyone.if.no.acl.found=false``
refuses whatever no ACL allows; the admin is the only super user. ``apply`` creates a run's
topics and grants its ACL plan (``clearsim.bus.security``).
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from clearsim.bus.security import ADMIN, DEFAULT_MECHANISM, AclPlan, Credentials, generate

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "kafka"


class BrokerUnavailable(Exception):
    """No broker could be assembled or started; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (all held open while they are chosen)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def cluster_id() -> str:
    """A random KRaft cluster id. Like Kafka's own Uuid.randomUuid, never one that starts
    with "-": the storage tool's argument parser would read it as an option."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def assemble(tools: bool = False) -> Path:
    """The directory of the broker's jars, assembling them first if needed (``tools``: of
    Kafka's own performance tools instead, ``assemble.sh --tools``)."""
    for tool in ("java", "mvn", "bash"):
        if shutil.which(tool) is None:
            raise BrokerUnavailable(f"{tool} is not installed (tools/setup-system.sh installs it)")
    done = subprocess.run(["bash", str(TOOLS / "assemble.sh"), *(["--tools"] if tools else [])],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise BrokerUnavailable(f"assembling Kafka failed:\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class Security:
    """SASL/SCRAM and ACLs on a broker: the super user ``admin`` and the ``users`` whose
    SCRAM credentials are created when the storage is formatted."""

    admin: Credentials
    users: tuple[Credentials, ...] = ()

    @classmethod
    def generate(cls, users=(), mechanism: str = DEFAULT_MECHANISM) -> "Security":
        """An admin and ``users`` (names), each with a fresh random password."""
        made = generate([ADMIN, *users], mechanism)
        return cls(made.pop(ADMIN), tuple(made.values()))

    def credentials(self, user: str) -> Credentials:
        for c in (self.admin, *self.users):
            if c.user == user:
                return c
        raise KeyError(f"no user {user!r} on the broker")

    def format_arguments(self) -> list[str]:
        """``StorageTool format`` arguments creating every user's SCRAM credentials."""
        return [arg for c in (self.admin, *self.users)
                for arg in ("--add-scram", f"{c.mechanism}=[name={c.user},password={c.password}]")]

    def properties(self, listener: str) -> list[str]:
        """The broker's settings for its client listener ``listener`` and its controller
        listener ``CONTROLLER``."""
        admin = self.admin
        mechanisms = sorted({c.mechanism for c in (admin, *self.users)})
        return [
            f"sasl.enabled.mechanisms={','.join(mechanisms)}",
            f"sasl.mechanism.inter.broker.protocol={admin.mechanism}",
            f"listener.name.{listener.lower()}.{admin.mechanism.lower()}.sasl.jaas.config="
            f"org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{admin.user}" password="{admin.password}";',
            "sasl.mechanism.controller.protocol=PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            "listener.name.controller.plain.sasl.jaas.config="
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{admin.user}" password="{admin.password}" '
            f'user_{admin.user}="{admin.password}";',
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users={admin.principal}",
            "allow.everyone.if.no.acl.found=false",
        ]


class KafkaBroker:
    """One broker (and controller) in its own JVM. Alone by default; ``KafkaCluster`` gives
    it a node id, its ports and the quorum it votes in."""

    def __init__(self, workdir: Path | None = None, heap: str = "512m", partitions: int = 3,
                 node_id: int = 1, security: Security | None = None):
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="clearsim-kafka-"))
        self.heap = heap
        self.partitions = partitions
        self.node_id = node_id
        self.security = security
        self.port: int | None = None
        self.controller_port: int | None = None
        self.voters: str | None = None          # controller.quorum.voters; None: itself
        self.brokers = 1                        # how many brokers the cluster has
        self._libs: Path | None = None
        self._props: Path | None = None
        self._process: subprocess.Popen | None = None
        self._log = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _properties(self) -> Path:
        from clearsim.bus.kafka import replication_settings

        logs = self.workdir / "data"
        shutil.rmtree(logs, ignore_errors=True)   # a fresh cluster every start
        copies = replication_settings(self.brokers)
        voters = self.voters or f"{self.node_id}@127.0.0.1:{self.controller_port}"
        props = self.workdir / "server.properties"
        client = self.listener
        controller = "SASL_PLAINTEXT" if self.security else "PLAINTEXT"
        props.write_text("\n".join([
            "process.roles=broker,controller",
            f"node.id={self.node_id}",
            f"controller.quorum.voters={voters}",
            f"listeners={client}://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners={client}://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            f"listener.security.protocol.map=CONTROLLER:{controller},{client}:{client}",
            f"inter.broker.listener.name={client}",
            *(self.security.properties(client) if self.security else []),
            f"log.dirs={logs}",
            f"num.partitions={self.partitions}",
            f"default.replication.factor={copies['replication_factor']}",
            f"min.insync.replicas={copies['min_insync_replicas']}",
            f"offsets.topic.replication.factor={copies['replication_factor']}",
            "offsets.topic.num.partitions=3",
            f"transaction.state.log.replication.factor={copies['replication_factor']}",
            f"transaction.state.log.min.isr={copies['min_insync_replicas']}",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "num.network.threads=2",
            "num.io.threads=2",
            "log.retention.hours=1",
            "",
        ]))
        return props

    @property
    def listener(self) -> str:
        """The name (and protocol) of the listener clients and other brokers use."""
        return "SASL_PLAINTEXT" if self.security else "PLAINTEXT"

    def client_settings(self, user: str | None = None) -> dict:
        """kafka-python settings of a client of this broker speaking as ``user`` (default:
        the admin when the broker is secured)."""
        from clearsim.bus.kafka import security_settings

        if self.security is None:
            return security_settings(None)
        return security_settings(self.security.credentials(user or self.security.admin.user))

    def bus(self, user: str | None = None, **options):
        """A ``KafkaBus`` on this broker speaking as ``user`` (default: the admin on a
        secured broker; PLAINTEXT on another)."""
        return _bus(self.bootstrap, self.security, user, **options)

    def apply(self, plan: AclPlan, partitions: int | None = None) -> None:
        """As the admin, create ``plan``'s topics and grant its ACLs."""
        _apply(self, plan, partitions)

    def _java(self, libs: Path, *args: str) -> list[str]:
        return ["java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseSerialGC",
                f"-Dlog4j.configuration=file:{TOOLS / 'log4j.properties'}",
                "-cp", f"{libs}/*", *args]

    def start(self, timeout: float = 120) -> "KafkaBroker":
        libs = assemble()
        self.port, self.controller_port = free_ports(2)
        self.check_formatted(self.prepare(libs, cluster_id()))
        self.launch()
        self.await_ready(timeout)
        return self

    def prepare(self, libs: Path, cluster: str) -> subprocess.Popen:
        """Write the broker's properties and start formatting its storage for ``cluster``
        (wait on the process returned, then ``check_formatted`` it)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._libs, self._props = libs, self._properties()
        return subprocess.Popen(self._java(libs, "kafka.tools.StorageTool", "format",
                                           f"--cluster-id={cluster}", "-c", str(self._props),
                                           "--ignore-formatted",
                                           *(self.security.format_arguments()
                                             if self.security else [])),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def check_formatted(self, formatting: subprocess.Popen, timeout: float = 120) -> None:
        try:
            out, _ = formatting.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            formatting.kill()
            out, _ = formatting.communicate()
        if formatting.returncode != 0:
            raise BrokerUnavailable(f"formatting KRaft storage of broker {self.node_id} "
                                    f"failed:\n{out}")

    def launch(self) -> None:
        """Start the broker's JVM on its properties (``await_ready`` waits for it)."""
        if self._props is None:
            raise BrokerUnavailable(f"broker {self.node_id} was never prepared: nothing to start")
        self._log = (self.workdir / "broker.log").open("ab")
        self._process = subprocess.Popen(self._java(self._libs, "kafka.Kafka", str(self._props)),
                                         stdout=self._log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def restart(self, down_seconds: float = 0, timeout: float = 120) -> None:
        """Stop the broker, leave it down ``down_seconds``, start it again on the same
        ports and data (returns once it answers again)."""
        if self._props is None:
            raise BrokerUnavailable("the broker was never started: nothing to restart")
        self.stop()
        time.sleep(down_seconds)
        self.start_again(timeout)

    def start_again(self, timeout: float = 120) -> None:
        """Start a stopped broker on the same ports and data (returns once it answers)."""
        deadline = time.monotonic() + timeout
        while True:   # the old process may hold the port a moment after it exits
            try:
                self.launch()
                self.await_ready(max(1.0, deadline - time.monotonic()))
                return
            except BrokerUnavailable:
                self.stop()
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def await_ready(self, timeout: float) -> None:
        """Return once the broker answers a metadata request; stop it and raise
        ``BrokerUnavailable`` if it exits or does not answer within ``timeout``."""
        from kafka import KafkaAdminClient

        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerUnavailable(f"broker {self.node_id} exited with "
                                        f"{self._process.returncode}:\n{self.log_tail()}")
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap,
                                         request_timeout_ms=5000, client_id="clearsim-probe",
                                         **self.client_settings())
                try:
                    admin.list_topics()
                    return
                finally:
                    admin.close()
            except Exception as exc:  # not up yet
                last = exc
                time.sleep(0.5)
        self.stop()
        raise BrokerUnavailable(f"broker {self.node_id} did not answer within {timeout:.0f}s "
                                f"({last}):\n{self.log_tail()}")

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the broker's JVM, if it runs, and return at once."""
        if self.running:
            os.killpg(self._process.pid, sig)

    def log_tail(self, lines: int = 30) -> str:
        path = self.workdir / "broker.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 30, sig: int = signal.SIGTERM) -> None:
        """End the broker: ``sig`` (SIGTERM: a controlled shutdown that hands its
        partitions' leadership over first; SIGKILL: a crash), SIGKILL after ``timeout``."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "KafkaBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class KafkaCluster:
    """``size`` KRaft brokers on one machine, each broker and controller in one JVM, one
    quorum of them all. ``bootstrap`` names every broker, so a client reaches the cluster
    whichever one is down."""

    def __init__(self, size: int = 3, workdir: Path | None = None, heap: str = "384m",
                 partitions: int = 3, security: Security | None = None):
        if size < 1:
            raise ValueError("a cluster has at least one broker")
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="clearsim-kafka-cluster-"))
        self.security = security
        self.brokers = [KafkaBroker(self.workdir / f"broker-{n}", heap, partitions, node_id=n,
                                    security=security)
                        for n in range(1, size + 1)]

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers)

    @property
    def replication(self) -> dict[str, int]:
        from clearsim.bus.kafka import replication_settings

        return replication_settings(len(self.brokers))

    def broker(self, node_id: int) -> KafkaBroker:
        for b in self.brokers:
            if b.node_id == node_id:
                return b
        raise KeyError(f"no broker {node_id} in the cluster")

    def start(self, timeout: float = 180) -> "KafkaCluster":
        """Format every broker's storage for one new cluster id, start them all (none
        serves clients before a majority of the quorum is up), and return once every
        broker answers and all of them are registered."""
        libs = assemble()
        ports = free_ports(2 * len(self.brokers))
        for i, b in enumerate(self.brokers):
            b.port, b.controller_port = ports[2 * i], ports[2 * i + 1]
            b.brokers = len(self.brokers)
        voters = ",".join(f"{b.node_id}@127.0.0.1:{b.controller_port}" for b in self.brokers)
        for b in self.brokers:
            b.voters = voters
        cluster = cluster_id()
        formatting = [(b, b.prepare(libs, cluster)) for b in self.brokers]   # at once
        failures = []
        for b, process in formatting:
            try:
                b.check_formatted(process)
            except BrokerUnavailable as exc:
                failures.append(str(exc))
        if failures:
            raise BrokerUnavailable("\n".join(failures))
        deadline = time.monotonic() + timeout
        try:
            for b in self.brokers:
                b.launch()
            for b in self.brokers:
                b.await_ready(max(1.0, deadline - time.monotonic()))
            self.await_registered(deadline - time.monotonic())
        except BaseException:
            self.stop()
            raise
        return self

    def ask(self, question, timeout: float = 30):
        """``question(admin)`` answered by the running brokers, asked again while a broker
        between states (or one just stopped, still in the metadata) fails it."""
        from kafka import KafkaAdminClient

        deadline = time.monotonic() + timeout
        while True:
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.live_bootstrap(),
                                         request_timeout_ms=5000, client_id="clearsim-probe",
                                         **self.brokers[0].client_settings())
                try:
                    return question(admin)
                finally:
                    admin.close()
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def registered(self, timeout: float = 30) -> set[int]:
        """Ids of the brokers the cluster's metadata lists as up."""
        return self.ask(lambda admin: {b["broker_id"]
                                       for b in admin.describe_cluster()["brokers"]}, timeout)

    def await_registered(self, timeout: float) -> None:
        """Wait until every running broker is in the cluster's metadata."""
        wanted = {b.node_id for b in self.brokers if b.running}
        deadline = time.monotonic() + timeout
        seen: set[int] = set()
        while True:
            try:
                seen = self.registered(timeout=5)
                if wanted <= seen:
                    return
            except Exception:  # no broker answers yet: ask again
                pass
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"brokers {sorted(wanted - seen)} did not join the "
                                        f"cluster within {timeout:.0f}s")
            time.sleep(0.5)

    def live_bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers if b.running) or self.bootstrap

    def stop_broker(self, node_id: int, sig: int = signal.SIGTERM) -> KafkaBroker:
        """Stop one broker (``sig`` as in ``KafkaBroker.stop``); the others go on."""
        broker = self.broker(node_id)
        broker.stop(sig=sig)
        return broker

    def start_broker(self, node_id: int, timeout: float = 120) -> KafkaBroker:
        """Start a stopped broker again on its ports and data; returns once it answers and
        the cluster lists it again."""
        broker = self.broker(node_id)
        deadline = time.monotonic() + timeout
        broker.start_again(timeout)
        self.await_registered(max(1.0, deadline - time.monotonic()))
        return broker

    def leaders(self, topics: list[str]) -> dict[tuple[str, int], int]:
        """(topic, partition) -> the id of the broker leading it (-1: none)."""
        return self.ask(lambda admin: {(t["name"], p["partition_index"]): p["leader_id"]
                                       for t in admin.describe_topics(topics)
                                       for p in t["partitions"]})

    def bus(self, user: str | None = None, **options):
        """A ``KafkaBus`` on the cluster speaking as ``user`` (see ``KafkaBroker.bus``)."""
        return _bus(self.bootstrap, self.security, user, **options)

    def apply(self, plan: AclPlan, partitions: int | None = None) -> None:
        """As the admin, create ``plan``'s topics and grant its ACLs."""
        _apply(self, plan, partitions)

    def stop(self) -> None:
        """Stop every broker: all are told at once (one by one, the last ones would wait
        for a quorum that is already gone to hand their partitions over)."""
        for b in self.brokers:
            b.send_signal(signal.SIGTERM)
        for b in self.brokers:
            b.stop()

    def __enter__(self) -> "KafkaCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _bus(bootstrap: str, security: Security | None, user: str | None, **options):
    from clearsim.bus.kafka import KafkaBus

    credentials = None
    if security is not None:
        credentials = security.credentials(user or security.admin.user)
    elif user is not None:
        raise ValueError(f"the broker authenticates nobody: no user {user!r} on it")
    return KafkaBus(bootstrap, credentials=credentials, **options)


def _apply(server, plan: AclPlan, partitions: int | None) -> None:
    from clearsim.bus.kafka import apply_plan

    if server.security is None:
        raise BrokerUnavailable("ACLs need a secured broker (Security): this one authorises "
                                "nobody")
    bus = server.bus(client_id="clearsim-acls")
    try:
        default = (server.brokers[0] if isinstance(server, KafkaCluster) else server).partitions
        apply_plan(bus, plan, partitions or default)
    finally:
        bus.close()

"""A real Apache Kafka broker (KRaft, broker + controller in one JVM) on 127.0.0.1.

Assembled from Maven Central by ``tools/kafka/assemble.sh``; used by the tests and by
``clearsim run --kafka local``. Storage is formatted with ``kafka.tools.StorageTool`` and
``kafka.Kafka`` is started with a small heap on free ports; ``start`` returns once the
broker answers a metadata request, ``stop`` ends it (SIGTERM, then SIGKILL). ``restart``
stops it and starts it again on the same ports and the same data directory, as an operator
restarting a broker would: topics, records and committed offsets survive.
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
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "kafka"


class BrokerUnavailable(Exception):
    """No broker could be assembled or started; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


class KafkaBroker:
    def __init__(self, workdir: Path | None = None, heap: str = "512m", partitions: int = 3):
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="clearsim-kafka-"))
        self.heap = heap
        self.partitions = partitions
        self.port: int | None = None
        self._libs: Path | None = None
        self._props: Path | None = None
        self._process: subprocess.Popen | None = None
        self._log = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _properties(self, controller_port: int) -> Path:
        logs = self.workdir / "data"
        shutil.rmtree(logs, ignore_errors=True)   # a fresh cluster every start
        props = self.workdir / "server.properties"
        props.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={logs}",
            f"num.partitions={self.partitions}",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=3",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "num.network.threads=2",
            "num.io.threads=2",
            "log.retention.hours=1",
            "",
        ]))
        return props

    def _java(self, libs: Path, *args: str) -> list[str]:
        return ["java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseSerialGC",
                f"-Dlog4j.configuration=file:{TOOLS / 'log4j.properties'}",
                "-cp", f"{libs}/*", *args]

    def start(self, timeout: float = 120) -> "KafkaBroker":
        libs = assemble()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        props = self._properties(free_port())
        fmt = subprocess.run(self._java(libs, "kafka.tools.StorageTool", "format",
                                        f"--cluster-id={cluster_id()}", "-c", str(props),
                                        "--ignore-formatted"),
                             capture_output=True, text=True, timeout=120)
        if fmt.returncode != 0:
            raise BrokerUnavailable(f"formatting KRaft storage failed:\n{fmt.stdout}{fmt.stderr}")
        self._libs, self._props = libs, props
        self._launch(timeout)
        return self

    def _launch(self, timeout: float) -> None:
        self._log = (self.workdir / "broker.log").open("ab")
        self._process = subprocess.Popen(self._java(self._libs, "kafka.Kafka", str(self._props)),
                                         stdout=self._log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self._await_ready(timeout)

    def restart(self, down_seconds: float = 0, timeout: float = 120) -> None:
        """Stop the broker, leave it down ``down_seconds``, start it again on the same
        ports and data (returns once it answers again)."""
        if self._props is None:
            raise BrokerUnavailable("the broker was never started: nothing to restart")
        self.stop()
        time.sleep(down_seconds)
        deadline = time.monotonic() + timeout
        while True:   # the old process may hold the port a moment after it exits
            try:
                self._launch(max(1.0, deadline - time.monotonic()))
                return
            except BrokerUnavailable:
                self.stop()
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def _await_ready(self, timeout: float) -> None:
        from kafka import KafkaAdminClient

        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerUnavailable(f"the broker exited with {self._process.returncode}:\n"
                                        f"{self.log_tail()}")
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap,
                                         request_timeout_ms=5000, client_id="clearsim-probe")
                try:
                    admin.list_topics()
                    return
                finally:
                    admin.close()
            except Exception as exc:  # not up yet
                last = exc
                time.sleep(0.5)
        self.stop()
        raise BrokerUnavailable(f"the broker did not answer within {timeout:.0f}s ({last}):\n"
                                f"{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        path = self.workdir / "broker.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 30) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
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

"""A test bed as processes: every node of a scenario its own ``clearsim node`` process.

``clearsim run --processes`` starts them (``spawn``), drives the scenario from its own
process and reads each node's results from the node's own database, as ``clearsim drive``
does against nodes started by someone else (compose, another machine). A node's database
is where its process keeps it: a database ``{prefix}_{node_id}`` on a PostgreSQL server, or
a SQLite file ``{node_id}.db`` in a directory (``node_db_url``), so driver and nodes agree on
it from the same two settings.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from clearsim.db import Database
from clearsim.messages import HUB, hospitals_node, region_node

log = logging.getLogger("clearsim.processes")

STOP_WAIT = 30.0      # wall seconds a node has to finish its batch after SIGTERM


def is_server_url(db: str) -> bool:
    return "://" in db and not db.startswith("sqlite")


def node_db_url(db: str, prefix: str, node_id: str, cache_kib: int | None = None) -> str:
    """The database of ``node_id``: ``db`` is a PostgreSQL server URL (the node's own
    database on it, created if missing) or a directory (a SQLite file in it)."""
    if is_server_url(db):
        from clearsim.db import ensure_database
        name = f"{prefix}_{node_id}".replace(".", "_").replace("-", "_").lower()
        return ensure_database(db, name[:63])
    if db.startswith("sqlite:///"):
        db = db.removeprefix("sqlite:///")
    directory = Path(db)
    directory.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{directory / (node_id + '.db')}"
    return url if cache_kib is None else f"{url}?cache_kib={cache_kib}"


@dataclass(frozen=True)
class NodeSpec:
    """One node process: ``clearsim node KIND SCENARIO [--code|--region CODE]``."""
    kind: str            # hub | region | hospitals
    code: str | None

    @property
    def node_id(self) -> str:
        if self.kind == "hub":
            return HUB
        return region_node(self.code) if self.kind == "region" else hospitals_node(self.code)

    def arguments(self) -> list[str]:
        if self.kind == "hub":
            return ["hub"]
        return [self.kind, "--code" if self.kind == "region" else "--region", self.code]


def specs(topology) -> list[NodeSpec]:
    return ([NodeSpec("hub", None)] + [NodeSpec("region", c) for c in topology.regions]
            + [NodeSpec("hospitals", c) for c in topology.hospitals])


class NodeProcess:
    """A running ``clearsim node`` process, handled like a node thread of a single-process
    run: ``is_alive``, ``pause`` (SIGSTOP) and ``resume`` (SIGCONT), ``stop`` (SIGTERM: the
    node finishes the batch in hand, commits and closes; SIGKILL after ``STOP_WAIT``)."""

    def __init__(self, spec: NodeSpec, claim_args: list[str], *, kafka: str, db: str,
                 prefix: str, partitions: int, logdir: Path, metrics_port: int | None = None,
                 env: dict | None = None):
        self.spec = spec
        self.name = spec.node_id
        self.stopping = threading.Event()
        self.running = threading.Event()
        self.running.set()
        command = [sys.executable, "-m", "testbed.cli", "node", *spec.arguments(), *claim_args,
                   "--kafka", kafka, "--db", db, "--prefix", prefix,
                   "--partitions", str(partitions), "--instance", "1"]
        if metrics_port is not None:
            command += ["--metrics-port", str(metrics_port)]
        self.command = command
        self.env = env
        self.crashes = 0
        self._restarting = threading.Lock()     # held while the process is down on purpose
        logdir.mkdir(parents=True, exist_ok=True)
        self.log_path = logdir / f"{self.name}.log"
        self._log = open(self.log_path, "ab")
        self.process = self._launch()

    def _launch(self) -> subprocess.Popen:
        return subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=self.env, start_new_session=True)

    def crash(self, down_seconds: float = 0.0) -> None:
        """SIGKILL the node where it stands (no batch finished, nothing closed), leave it
        down ``down_seconds`` and start it again on its database and its group's committed
        offsets (the crash harness, testbed.crash)."""
        with self._restarting:
            if self.stopping.is_set():
                return
            self.process.kill()
            self.process.wait()
            self.crashes += 1
            self._log.write(f"--- killed (SIGKILL), down {down_seconds:.2f} s ---\n".encode())
            self._log.flush()
            if self.stopping.wait(down_seconds):
                return
            self.process = self._launch()

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_alive(self) -> bool:
        """Running, or down on purpose and about to be started again."""
        if self._restarting.locked() and not self.stopping.is_set():
            return True
        return self.process.poll() is None

    def pause(self) -> None:
        self.running.clear()
        if self.is_alive():
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.is_alive():
            os.kill(self.process.pid, signal.SIGCONT)
        self.running.set()

    def stop(self) -> None:
        self.stopping.set()
        with self._restarting:       # a crash in hand ends first
            pass
        if self.process.poll() is None:
            if not self.running.is_set():
                self.resume()
            self.process.terminate()
            try:
                self.process.wait(STOP_WAIT)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s of SIGTERM: killed", self.name,
                            STOP_WAIT)
                self.process.kill()
                self.process.wait()
        self._log.close()

    def last_lines(self, count: int = 5) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-count:])


class RemoteNode:
    """A node run by another process, as the driver sees it: its id and its database (the
    driver reads the node's read models and outbox there; it never writes)."""

    def __init__(self, node_id: str, db_url: str):
        from sqlalchemy import MetaData
        self.node_id = node_id
        self.db = Database(db_url, MetaData())     # read through the node's queries only

    def ready(self) -> bool:
        """The node has created its tables (it has started)."""
        from sqlalchemy import inspect
        try:
            return inspect(self.db.engine).has_table("outbox")
        except Exception:   # not there yet: a server still starting, a file not created
            return False

    def stop(self) -> None:
        self.db.dispose()


def wait_ready(nodes: dict[str, RemoteNode], processes: list[NodeProcess], timeout: float,
               stopping: threading.Event | None = None) -> None:
    """Until every node has created its tables; a process that died says why."""
    from testbed.runner import RunTimeout
    deadline = time.monotonic() + timeout
    waiting = dict(nodes)
    while waiting:
        for node_id in [n for n, node in waiting.items() if node.ready()]:
            del waiting[node_id]
        for process in processes:
            if not process.is_alive():
                raise RunTimeout(f"node process {process.name} exited with code "
                                 f"{process.process.returncode}:\n{process.last_lines()}")
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise RunTimeout(f"timed out after {timeout:.0f}s waiting for node processes to "
                             f"start: {', '.join(sorted(waiting)[:10])}")
        if stopping is not None and stopping.is_set():
            return
        time.sleep(0.2)

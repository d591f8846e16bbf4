"""A real PostgreSQL server (Debian's package) owned by a test run, on 127.0.0.1.

``initdb`` into a fresh directory, ``postgres`` on a free port with its socket in that
directory, one empty database per test via ``create_database``. The server refuses to run
as root, so as root it runs as the ``postgres`` system user (``tools/setup-system.sh``).
Durability settings are off (fsync, full_page_writes, synchronous_commit): the data of a
test server is thrown away, and transactions and constraints behave exactly the same.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from clearsim.testing.kafka import free_port


class PostgresUnavailable(Exception):
    """No PostgreSQL server could be started; the message says why."""


def server_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise PostgresUnavailable("no PostgreSQL server binaries in /usr/lib/postgresql "
                                  "(tools/setup-system.sh installs them)")
    return Path(found[-1]).parent


def _let_others_traverse(path: Path) -> None:
    """The server's user must reach its directory through parents root made private."""
    for folder in (path, *path.parents):
        mode = folder.stat().st_mode
        if not mode & 0o001:
            os.chmod(folder, mode | 0o001)


class PostgresServer:
    """A throwaway server for tests. ``durable``: a commit is acknowledged only once its
    write-ahead log has reached the operating system (``synchronous_commit=on``), so it
    survives the server's crash; without it (faster, the default for tests that never
    crash the server) a crash forgets the last commits, whose messages may already have
    gone out: a node's effects lost while its input counts as taken. ``fsync`` stays off
    either way: the machine itself does not crash in a test."""

    def __init__(self, workdir: Path | None = None, durable: bool = False):
        self.durable = durable
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="clearsim-pg-"))
        self.port: int | None = None
        self._process: subprocess.Popen | None = None
        self._user: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://clearsim@127.0.0.1:{self.port}/postgres"

    def _as_user(self, argv: list[str]) -> list[str]:
        return argv if self._user is None else ["runuser", "-u", self._user, "--", *argv]

    def start(self, timeout: float = 60) -> "PostgresServer":
        bindir = server_bin()
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root and there is no postgres user "
                                          "(tools/setup-system.sh creates it)") from None
            self._user = "postgres"
        data = self.workdir / "data"
        shutil.rmtree(data, ignore_errors=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            _let_others_traverse(self.workdir)
            os.chown(self.workdir, account.pw_uid, account.pw_gid)
        init = subprocess.run(self._as_user([str(bindir / "initdb"), "-D", str(data), "-A",
                                             "trust", "-U", "clearsim", "--encoding=UTF8",
                                             "--locale=C", "--no-sync"]),
                              capture_output=True, text=True)
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed:\n{init.stdout}{init.stderr}")
        self.port = free_port()
        self._launch(timeout)
        return self

    def _launch(self, timeout: float) -> None:
        bindir = server_bin()
        data = self.workdir / "data"
        log = self.workdir / "postgres.log"
        self._process = subprocess.Popen(
            self._as_user([str(bindir / "postgres"), "-D", str(data), "-p", str(self.port),
                           "-k", str(self.workdir), "-c", "listen_addresses=127.0.0.1",
                           "-c", "fsync=off", "-c", "full_page_writes=off",
                           "-c", f"synchronous_commit={'on' if self.durable else 'off'}",
                           "-c", "max_connections=200"]),
            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
        self._await_ready(timeout, log)

    def restart(self, down_seconds: float = 0, timeout: float = 60) -> None:
        """Crash the server (SIGQUIT: immediate shutdown, no checkpoint; it recovers from
        its write-ahead log when it starts), leave it down ``down_seconds``, start it again
        on the same data and port; returns once it accepts connections."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGQUIT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        time.sleep(down_seconds)
        deadline = time.monotonic() + timeout
        while True:   # the port may be held a moment after the old server exits
            try:
                self._launch(max(1.0, deadline - time.monotonic()))
                return
            except PostgresUnavailable:
                self.stop()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _await_ready(self, timeout: float, log: Path) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PostgresUnavailable(f"postgres exited with {self._process.returncode}:\n"
                                          f"{log.read_text(errors='replace')[-3000:]}")
            try:
                psycopg.connect(host="127.0.0.1", port=self.port, user="clearsim",
                                dbname="postgres", connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                time.sleep(0.2)
        self.stop()
        raise PostgresUnavailable(f"postgres did not accept connections within {timeout:.0f}s")

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="clearsim",
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://clearsim@127.0.0.1:{self.port}/{name}"

    def stop(self, timeout: float = 30) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)        # fast shutdown
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

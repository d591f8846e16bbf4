"""One ``clearsim run`` as a process of its own, as a user runs it: what it reports, how long
it took and the memory it used itself.

The benchmarks read three sources, the best first: the run's ``summary.json`` (sustained
claims/s, ``claims_seconds`` and ``peak_rss_mib`` where the runner reports them), the
hospitals' own ledgers (each claim's submission, the 2304 settlement request and its answer,
on the wall clock) and the operating system (the child's wall time and peak resident set,
from ``wait4``). A run stopped at its time limit still has its ledgers: how far it got.
"""

from __future__ import annotations

import json
import os
import signal
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child_env() -> dict:
    """The environment of a child clearsim: this checkout's packages first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def clearsim(*args: str) -> list[str]:
    return [sys.executable, "-m", "testbed.cli", *args]


@lru_cache(maxsize=None)
def run_options() -> str:
    """``clearsim run --help``: which options this checkout's runner has."""
    done = subprocess.run(clearsim("run", "--help"), cwd=ROOT, env=child_env(),
                          capture_output=True, text=True, timeout=120)
    return done.stdout


def supports(option: str) -> bool:
    return option in run_options()


def percentile(values: list[float], percent: float) -> float | None:
    """Nearest rank, as the run's own report computes it."""
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, -(-len(ordered) * percent // 100) - 1))
    return ordered[int(index)]


@dataclass
class Ledgers:
    """What the hospitals' ledgers say about a run's claims (wall clock)."""
    submitted: int = 0
    answered: int = 0
    first_submitted: datetime | None = None
    last_answered: datetime | None = None
    settle_ms: list[float] = field(default_factory=list)   # 2304 sent -> its answer

    @property
    def window(self) -> float | None:
        """Seconds from the first claim submitted to the last one answered."""
        if self.first_submitted is None or self.last_answered is None:
            return None
        return (self.last_answered - self.first_submitted).total_seconds()

    def add(self, rows) -> None:
        for state, submitted_at, asked_at, answered_at in rows:
            submitted_at, asked_at, answered_at = map(_when, (submitted_at, asked_at,
                                                              answered_at))
            self.submitted += 1
            if self.first_submitted is None or submitted_at < self.first_submitted:
                self.first_submitted = submitted_at
            if answered_at is None:
                continue
            self.answered += 1
            if self.last_answered is None or answered_at > self.last_answered:
                self.last_answered = answered_at
            if state == "settled" and asked_at is not None:
                self.settle_ms.append((answered_at - asked_at).total_seconds() * 1000)


LEDGER_QUERY = "SELECT state, submitted_at, asked_at, answered_at FROM hospital_claims"


def _when(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def read_ledgers(dbdir: Path, postgres: str | None = None, prefix: str = "") -> Ledgers | None:
    """The hospitals nodes' ledgers of a run: SQLite files in ``dbdir``, or the databases
    of the run's prefix on a PostgreSQL server. None when there are none (yet)."""
    ledgers = Ledgers()
    found = False
    try:
        if postgres:
            found = _read_postgres(ledgers, postgres, prefix)
        else:
            for path in sorted(dbdir.glob("hospitals-*.db")):
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as conn:
                    try:
                        ledgers.add(conn.execute(LEDGER_QUERY))
                        found = True
                    except sqlite3.OperationalError:   # not created yet
                        pass
    except Exception as exc:   # a benchmark reports what it can
        print(f"benchmarks: could not read the hospitals' ledgers: {exc}", file=sys.stderr)
        return None
    return ledgers if found else None


def _read_postgres(ledgers: Ledgers, url: str, prefix: str) -> bool:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(url)
    pattern = f"{prefix}_hospitals_".replace(".", "_").replace("-", "_").lower()
    engine = create_engine(base)
    with engine.connect() as conn:
        names = [n for (n,) in conn.execute(text("SELECT datname FROM pg_database"))
                 if n.startswith(pattern)]
    engine.dispose()
    for name in sorted(names):
        engine = create_engine(base.set(database=name))
        with engine.connect() as conn:
            ledgers.add(conn.execute(text(LEDGER_QUERY)))
        engine.dispose()
    return bool(names)


def policies_held(dbdir: Path) -> tuple[int | None, int]:
    """How many policy copies the region nodes hold, and how many region nodes there are
    (their SQLite files; None where the table is not there to count)."""
    paths = sorted(dbdir.glob("region-*.db"))
    held = 0
    try:
        for path in paths:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as conn:
                held += conn.execute("SELECT count(*) FROM region_policy_cache").fetchone()[0]
    except sqlite3.Error:
        return None, len(paths)
    return (held if paths else None), len(paths)


@dataclass
class Outcome:
    command: list[str]
    out: Path
    exit_code: int | None
    seconds: float                    # the child's wall time
    peak_mib: float                   # its peak resident set
    timed_out: bool
    summary: dict | None
    ledgers: Ledgers | None
    stderr: str
    started_at: float = 0.0           # time.time() at launch
    retried: str = ""                 # why the first attempt was not kept, if it was not

    @property
    def startup(self) -> float | None:
        """Wall seconds from launch to the first claim submitted."""
        if not self.ledgers or self.ledgers.first_submitted is None:
            return None
        first = self.ledgers.first_submitted
        if first.tzinfo is not None:
            return first.timestamp() - self.started_at
        return first.replace(tzinfo=timezone.utc).timestamp() - self.started_at   # UTC

    @property
    def finished(self) -> bool:
        return self.summary is not None and not self.timed_out

    @property
    def claims(self) -> int:
        if self.summary:
            return self.summary["claims"]
        return self.ledgers.answered if self.ledgers else 0

    def sustained(self) -> tuple[float | None, float | None, str]:
        """(claims/s, over how many seconds, measured how): the runner's own figure if it
        has one, else the hospitals' ledgers' window, else the whole run."""
        s = self.summary or {}
        if s.get("claims_per_second"):
            return (s["claims_per_second"], s.get("claims_seconds"),
                    "the runner's claims_per_second (first claim submitted to last finished)")
        if self.ledgers and self.ledgers.window:
            return (self.ledgers.answered / self.ledgers.window, self.ledgers.window,
                    "the hospitals' ledgers (first claim submitted to last answered)")
        if s.get("wall_seconds"):
            return (s["claims"] / s["wall_seconds"], s["wall_seconds"],
                    "the whole run (start-up, reconciliation and clearing included)")
        return None, None, "not measured"

    def messages_per_claim(self) -> float | None:
        s = self.summary or {}
        return s["messages_in"] / s["claims"] if s.get("claims") else None

    def memory(self) -> float:
        s = self.summary or {}
        return s.get("peak_rss_mib") or self.peak_mib

    def note(self, otherwise: str) -> str:
        """What a figure measured on this run should say of it."""
        text = self.problem() or otherwise
        if self.retried:
            text += f"; run twice, the first attempt failed before its first claim ({self.retried})"
        return text

    def last_error(self) -> str:
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        return lines[-1][-300:] if lines else "(nothing on stderr)"

    def problem(self) -> str:
        """Why the run is not a clean result, or ''."""
        if self.timed_out:
            return f"stopped at its time limit after {self.seconds:.0f} s"
        if self.summary is None:
            return f"exited {self.exit_code} without a summary: {self.last_error()}"
        if self.exit_code != 0:
            s = self.summary
            return (f"exited {self.exit_code}: unfinished {s.get('unfinished')}, agreed "
                    f"{s.get('agreed')}/{s.get('claims')}, invariant violations "
                    f"{len(s.get('invariant_violations') or [])}, delivery problems "
                    f"{len(s.get('delivery_problems') or [])}")
        return ""


def run(scenario: Path, out: Path, *options: str, timeout: float,
        postgres: str | None = None, label: str = "run") -> Outcome:
    """``clearsim run SCENARIO --out OUT OPTIONS`` in a child process, stopped (process
    group, SIGTERM then SIGKILL) after ``timeout`` wall seconds. A run that fails before
    its first claim (a broker still electing its partitions' leaders, say) is run once
    more, and ``retried`` says why."""
    outcome = _run(scenario, out, options, timeout, postgres, label)
    if (outcome.summary is None and not outcome.timed_out
            and not (outcome.ledgers and outcome.ledgers.submitted)):
        first = f"exit code {outcome.exit_code}: {outcome.last_error()}"
        print(f"  [{label}] failed before its first claim ({first}); once more",
              file=sys.stderr, flush=True)
        outcome = _run(scenario, out, options, timeout, postgres, label)
        outcome.retried = first
    return outcome


def _run(scenario: Path, out: Path, options: tuple, timeout: float,
         postgres: str | None, label: str) -> Outcome:
    shutil.rmtree(out, ignore_errors=True)      # the benchmark's own scratch: a run from empty
    out.mkdir(parents=True, exist_ok=True)
    prefix = f"b{uuid.uuid4().hex[:10]}"
    command = clearsim("run", str(scenario), "--out", str(out), "--topic-prefix", prefix,
                       *options, *(["--postgres", postgres] if postgres else []))
    print(f"  [{label}] clearsim {' '.join(command[3:])}", file=sys.stderr, flush=True)
    started, started_at = time.perf_counter(), time.time()
    with open(out / "stdout.txt", "wb") as stdout, open(out / "stderr.txt", "wb") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, env=child_env(), stdout=stdout,
                                   stderr=stderr, start_new_session=True)
        timed_out = threading.Event()

        def stop() -> None:
            timed_out.set()
            for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 0)):
                if process.returncode is not None:   # reaped: its group may be gone
                    return
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    return
                deadline = time.monotonic() + grace
                while time.monotonic() < deadline and process.returncode is None:
                    time.sleep(0.5)
        timer = threading.Timer(timeout, stop)
        timer.daemon = True
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    stderr_text = (out / "stderr.txt").read_text(errors="replace")[-2000:]
    outcome = Outcome(command, out, process.returncode, seconds, usage.ru_maxrss / 1024,
                      timed_out.is_set(), summary,
                      read_ledgers(out / "db", postgres, prefix), stderr_text, started_at)
    rate, _, _ = outcome.sustained()
    print(f"  [{label}] {outcome.claims} claims in {seconds:.1f} s"
          + (f", {rate:.1f} claims/s sustained" if rate else "")
          + f", peak {outcome.memory():.0f} MiB"
          + (f"; {outcome.problem()}" if outcome.problem() else ""), file=sys.stderr,
          flush=True)
    return outcome

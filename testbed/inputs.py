"""What ``run``, ``drive`` and ``node`` read before anything starts: the scenario and its
claims, and every flag and environment variable, each checked so that a mistake ends in one
line naming it instead of a traceback or a run that does something else. Node processes
read the same claims as the driver: a region knows its insured persons from them
(``testbed.topology``), so every process of a test bed must be given the same scenario and
the same claim options."""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
import time
from datetime import timedelta
from pathlib import Path

from clearsim.errors import ClearsimError, ErrorCode

MAX_PARTITIONS = 1000
BROKER_WAIT = 5.0           # wall seconds a run waits for a broker to accept a connection
DATABASE_WAIT = 10          # seconds PostgreSQL has to accept a connection (connect_timeout)
_PREFIX = re.compile(r"[A-Za-z0-9._-]{1,40}")


def add_claim_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", type=Path, help="scenario TOML file")
    p.add_argument("--claims", type=Path,
                   help="claims JSON file (default: the scenario's [sim] claims)")
    p.add_argument("--workload", action="store_true",
                   help="generate claims from the scenario's [workload] even when it names "
                        "a claims file")
    p.add_argument("--days", type=positive_int, help="simulated days of a [workload] "
                                                     "(default: sim.days)")


# -- argparse types: a bad value is one line naming the flag (testbed.cli) -------------

def _number(text: str, kind, what: str):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_int(text: str) -> int:
    value = _number(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be at least 1")
    return value


def partitions(text: str) -> int:
    value = positive_int(text)
    if value > MAX_PARTITIONS:
        raise argparse.ArgumentTypeError(f"{value}: at most {MAX_PARTITIONS} partitions a "
                                         "topic")
    return value


def port(text: str) -> int:
    value = _number(text, int, "a port number")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value}: a port is 0 to 65535 (0: any free one)")
    return value


def positive_float(text: str) -> float:
    """A number of seconds, a rate or a speed-up: finite and above zero."""
    value = _number(text, float, "a number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: must be more than 0")
    return value


def prefix(text: str) -> str:
    if not _PREFIX.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text[:60]!r}: a topic prefix is 1 to 40 letters, digits, '.', '_' or '-' "
            "(it names Kafka topics and PostgreSQL databases)")
    return text


def kafka_servers(text: str) -> str:
    """``local``, ``memory`` or bootstrap servers ``HOST:PORT[,HOST:PORT...]`` (an optional
    ``kafka://`` in front)."""
    if text in ("local", "memory"):
        return text
    for server in text.removeprefix("kafka://").split(","):
        host, sep, number = server.strip().rpartition(":")
        if not sep or not host or not number.isdigit() or not 1 <= int(number) <= 65535:
            raise argparse.ArgumentTypeError(
                f"{text[:80]!r} is not HOST:PORT[,HOST:PORT...] (or 'local' for a broker of "
                "the run's own)")
    return text


def postgres_url(text: str) -> str:
    """A PostgreSQL server URL clearsim can use, with a bounded wait for a connection
    (``connect_timeout``, unless the URL sets one)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError
    example = "postgresql+psycopg://USER@HOST:PORT/DATABASE"
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        raise argparse.ArgumentTypeError(f"not a database URL such as {example}") from None
    if url.drivername not in ("postgresql", "postgresql+psycopg"):
        raise argparse.ArgumentTypeError(f"{url.drivername}:// is not a PostgreSQL URL "
                                         f"clearsim can use: {example}")
    if not url.host and "host" not in url.query:
        raise argparse.ArgumentTypeError(f"names no server: {example}")
    if "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": str(DATABASE_WAIT)})
    return url.render_as_string(hide_password=False)


def node_databases(text: str) -> str:
    """``--db``: a PostgreSQL server URL, or a directory of SQLite files."""
    from testbed.processes import is_server_url
    if is_server_url(text) or text.startswith(("postgres:", "postgresql")):
        return postgres_url(text)
    directory = Path(text.removeprefix("sqlite:///"))
    if directory.exists() and not directory.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a file; give a directory for the "
                                         "nodes' SQLite files, or a PostgreSQL URL")
    return text


# -- the environment -------------------------------------------------------------------

def from_environment(args, option: str, variable: str, convert, default=None) -> None:
    """``args.<option>`` from ``variable`` when the flag was not given, checked as the flag
    is; a bad value is an INVALID_INPUT naming the variable."""
    attr = option.lstrip("-").replace("-", "_")
    if getattr(args, attr) is not None:
        return
    text = os.environ.get(variable)
    if text is None or text == "":
        setattr(args, attr, default)
        return
    try:
        setattr(args, attr, convert(text))
    except argparse.ArgumentTypeError as exc:
        raise ClearsimError(ErrorCode.INVALID_INPUT, f"{variable}={shown_env(variable, text)} "
                            f"(the default of {option}): {exc}", variable) from None


def shown_env(variable: str, text: str) -> str:
    """An environment variable's value as a message may show it: a database URL without
    its password, anything else cut short."""
    if "POSTGRES" in variable or variable == "CLEARSIM_DB":
        from clearsim.db import safe_url
        try:
            return safe_url(text)
        except Exception:       # not a URL: nothing in it to hide
            pass
    return repr(text[:60] + ("..." if len(text) > 60 else ""))


# -- servers ---------------------------------------------------------------------------

def probe_kafka(servers: str, wait: float = BROKER_WAIT) -> None:
    """Return once one bootstrap server accepts a TCP connection; BROKER_UNAVAILABLE when
    none does within ``wait`` seconds (the Kafka client itself would try for half a
    minute and more before giving up)."""
    deadline = time.monotonic() + wait
    reason = "no server to try"
    while True:
        for server in servers.removeprefix("kafka://").split(","):
            host, _, number = server.strip().rpartition(":")
            host = host.strip("[]")
            try:
                with socket.create_connection((host, int(number)),
                                              timeout=max(0.1, deadline - time.monotonic())):
                    return
            except OSError as exc:
                reason = exc.strerror or str(exc) or type(exc).__name__
        if time.monotonic() >= deadline:
            raise ClearsimError(ErrorCode.BROKER_UNAVAILABLE,
                                f"no Kafka broker accepted a connection at {servers} within "
                                f"{wait:.0f} s ({reason})", "--kafka")
        time.sleep(0.25)


def prefix_unused(prefix: str, kafka: str | None, postgres: str | None) -> None:
    """A run starts from empty topics and node databases: what an earlier run left under the
    same ``--topic-prefix`` (its topics on the cluster, its databases ``PREFIX_NODE`` on the
    server) would be taken for this run's, so such a prefix is refused."""
    if kafka and kafka not in ("local", "memory"):
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError
        try:
            admin = KafkaAdminClient(bootstrap_servers=kafka.removeprefix("kafka://"),
                                     client_id="clearsim-check", request_timeout_ms=10000)
            try:
                topics = admin.list_topics()
            finally:
                admin.close()
        except KafkaError as exc:
            raise ClearsimError(ErrorCode.BROKER_UNAVAILABLE,
                                f"Kafka at {kafka}: {one_line(exc)}", "--kafka") from None
        taken = sorted(t for t in topics if t.startswith(prefix + "."))
        if taken:
            raise ClearsimError(ErrorCode.INVALID_INPUT,
                                f"--topic-prefix {prefix}: the cluster holds {len(taken)} "
                                f"topics of an earlier run under it ({taken[0]}, ...), which "
                                "this run would read as its own: give a new prefix, or none "
                                "for a unique one", "--topic-prefix")
    if postgres:
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import DBAPIError

        from clearsim.db import safe_url
        start = prefix.replace(".", "_").replace("-", "_").lower() + "_"
        engine = create_engine(postgres)
        try:
            with engine.connect() as conn:
                taken = conn.execute(text("SELECT datname FROM pg_database WHERE "
                                          "left(datname, :n) = :start ORDER BY datname"),
                                     {"n": len(start), "start": start}).scalars().all()
        except DBAPIError as exc:
            raise ClearsimError(ErrorCode.DATABASE_UNAVAILABLE,
                                f"cannot reach PostgreSQL at {safe_url(postgres)}: "
                                f"{one_line(exc.orig)}", "--postgres") from None
        finally:
            engine.dispose()
        if taken:
            raise ClearsimError(ErrorCode.INVALID_INPUT,
                                f"--topic-prefix {prefix}: the server holds {len(taken)} node "
                                f"databases of an earlier run under it ({taken[0]}, ...), "
                                "which this run would go on from: give a new prefix, or none "
                                "for a unique one", "--topic-prefix")


def one_line(text: object) -> str:
    """A server's (often multi-line) error as one line."""
    return " ".join(str(text).split())


# -- claims ----------------------------------------------------------------------------

def claim_arguments(args) -> list[str]:
    """The claim options of ``args`` as a command line, for a node process: the scenario
    and claims file as absolute paths (a process may start elsewhere)."""
    out = [str(Path(args.scenario).resolve())]
    if args.claims is not None:
        out += ["--claims", str(Path(args.claims).resolve())]
    if args.workload:
        out.append("--workload")
    if args.days is not None:
        out += ["--days", str(args.days)]
    return out


def load(args):
    """``(scenario, claims)``; a ``ClearsimError`` says what is wrong with either."""
    from clearsim.sim.claims import LATEST_DATE, load_claims, parse_claims
    from clearsim.sim.scenario import load_scenario
    from clearsim.sim.workload import stream

    scenario = load_scenario(args.scenario)
    if args.claims is not None and args.workload:
        raise ClearsimError(ErrorCode.INVALID_INPUT, "give --claims FILE or --workload, not "
                            "both: a run replays a claims file or generates claims", "--claims")
    claims_path = args.claims or (None if args.workload else scenario.sim.claims)
    if args.workload and scenario.workload is None:
        raise ClearsimError(ErrorCode.SCENARIO_INVALID,
                            f"{args.scenario}: --workload given but the scenario declares "
                            "no [workload]", "workload")
    if args.days is not None and args.days < 1:
        raise ClearsimError(ErrorCode.INVALID_INPUT,
                            f"--days {args.days}: must be at least 1", "--days")
    if claims_path is not None:
        if args.days is not None:
            raise ClearsimError(ErrorCode.INVALID_INPUT,
                                f"--days sets the length of a generated workload, but the "
                                f"claims of {claims_path} are replayed as they are: add "
                                "--workload to generate claims instead", "--days")
        return scenario, load_claims(claims_path)
    if scenario.workload is not None:
        days = args.days or scenario.sim.days
        if scenario.sim.start + timedelta(days=min(days, 10 ** 6) - 1) > LATEST_DATE:
            raise ClearsimError(ErrorCode.INVALID_INPUT,
                                f"--days {days} from {scenario.sim.start} runs past "
                                f"{LATEST_DATE}, the last date a run's calendar can hold",
                                "--days")
        return scenario, parse_claims(stream(scenario.workload, scenario, scenario.sim.start,
                                             days, scenario.sim.seed))
    raise ClearsimError(ErrorCode.SCENARIO_INVALID,
                        f"{args.scenario}: no claims to run: give --claims FILE, set [sim] "
                        "claims or declare a [workload] in the scenario", "claims")


def input_files(args, scenario) -> list[Path]:
    """Every file a run reads: the scenario, its catalogs and the claims file."""
    files = list(scenario.files) or [Path(args.scenario)]
    claims = args.claims or (None if args.workload else scenario.sim.claims)
    if claims is not None:
        files.append(Path(claims))
    return files

"""``clearsim run``: a scenario's claims through hub, regions and hospitals, then a report."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from clearsim.errors import ClearsimError, ErrorCode


def add_parser(sub) -> None:
    from testbed import inputs
    p = sub.add_parser(
        "run", help="run a scenario end to end (hub, regions, hospitals) and report",
        description="Run every claim of a scenario through the national hub, the region "
                    "nodes and the hospital nodes, on the in-process bus (default) or a "
                    "real Kafka broker, and report what each party recorded.")
    inputs.add_claim_options(p)
    p.add_argument("--kafka", metavar="HOST:PORT", type=inputs.kafka_servers,
                   help="bootstrap servers of a Kafka cluster (env CLEARSIM_KAFKA); "
                        "'local' starts the project's own single broker for the run; a "
                        f"cluster that accepts no connection within {inputs.BROKER_WAIT:.0f} s "
                        "ends the run with status 3")
    p.add_argument("--postgres", metavar="URL", type=inputs.postgres_url,
                   help="PostgreSQL server URL (postgresql+psycopg://user@host:port/db); "
                        "one database per node is created (env CLEARSIM_POSTGRES_URL); "
                        "default: one SQLite file per node")
    p.add_argument("--out", type=out_dir,
                   help="write summary.json, claims.json, claims.csv and the node databases "
                        "here (a directory it creates, an empty one, or one a run wrote: "
                        "nothing else in it is deleted or overwritten)")
    p.add_argument("--processes", action="store_true",
                   help="every node its own `clearsim node` process (needs --kafka); the "
                        "nodes' logs go to OUT/logs")
    p.add_argument("--metrics-port", type=inputs.port, metavar="PORT",
                   help="serve Prometheus metrics while the run lasts: every node's families "
                        "on PORT; with --processes node i serves on PORT+i (0: each a free "
                        "port, in its log)")
    p.add_argument("--report", action="store_true",
                   help="also write OUT/report.html, the run's report (clearsim report)")
    p.add_argument("--topic-prefix", type=inputs.prefix,
                   help="topic prefix (default: unique per run)")
    p.add_argument("--partitions", type=inputs.partitions, default=3,
                   help=f"partitions per topic (1 to {inputs.MAX_PARTITIONS})")
    p.add_argument("--timeout", type=inputs.positive_float, default=120.0,
                   help="wall seconds to wait for progress: no claim finishing, or a phase "
                        "not reaching its end, for this long fails the run")
    p.add_argument("--rate", type=inputs.positive_float, metavar="CLAIMS_PER_S",
                   help="offer claims at this many per wall second, evenly (open loop); "
                        "default: as fast as the nodes take them")
    p.add_argument("--in-flight", type=inputs.positive_int, default=2000, metavar="N",
                   help="claims in flight at most (default 2000)")
    p.add_argument("--speedup", type=inputs.positive_float,
                   help="pace the run: simulated time runs this many times faster than the "
                        "wall clock (86400 = one simulated day a second); default: flat out")
    p.add_argument("--answer-timeout", type=inputs.positive_float, default=30.0,
                   help="wall seconds before a region that has not answered a "
                        "reconciliation request is asked again")
    p.add_argument("--fault", action="append", default=[], metavar="KIND:key=value,...",
                   help="inject a fault besides the scenario's [[fault]] tables (repeatable; "
                        "`clearsim faults` lists the kinds)")
    p.add_argument("--no-repair", action="store_true",
                   help="leave what faults break unrepaired, to see exactly which claims "
                        "would settle wrong and by how much")
    p.add_argument("--json", action="store_true", help="print summary.json instead of text")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print nothing but errors; the exit status says how the run went "
                        "(0 every claim agreed and every check passed, 1 not, 2 bad input, "
                        "3 a server could not be reached, 4 clearsim itself failed, "
                        "130 interrupted)")
    p.add_argument("-v", "--verbose", action="store_true", help="log node activity")
    p.set_defaults(handler=main)


def out_dir(text: str) -> Path:
    """``--out``: a directory's path; an empty one (an unset shell variable) is refused
    rather than taken for the current directory."""
    import argparse
    if not text.strip():
        raise argparse.ArgumentTypeError("needs a directory (it was given empty)")
    return Path(text)


def main(args) -> int:
    from clearsim.privacy import Masker, mask_logs
    from clearsim.sim.claims import Claim
    from clearsim.sim.files import print_out
    from testbed import inputs
    from testbed.cli import EXIT_INTERRUPTED, fail
    from testbed.outdir import OutDir

    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(asctime)s %(threadName)s %(levelname)s %(message)s")
    if not args.verbose:   # the Kafka client reports every refused connection while it retries
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        inputs.from_environment(args, "--kafka", "CLEARSIM_KAFKA", inputs.kafka_servers)
        inputs.from_environment(args, "--postgres", "CLEARSIM_POSTGRES_URL",
                                inputs.postgres_url)
        scenario, claims = inputs.load(args)
        extra = extra_faults(scenario, args.fault)
        if args.report and not args.out:
            raise ClearsimError(ErrorCode.INVALID_INPUT, "--report writes OUT/report.html: "
                                "give --out DIR", "--report")
        if args.processes and args.kafka in (None, "memory"):
            raise ClearsimError(ErrorCode.INVALID_INPUT, "--processes needs a Kafka cluster: "
                                "--kafka HOST:PORT or --kafka local", "--processes")
        nodes = len(scenario.node_ids())
        if args.processes and args.metrics_port and args.metrics_port + nodes - 1 > 65535:
            raise ClearsimError(ErrorCode.INVALID_INPUT, f"--metrics-port {args.metrics_port}: "
                                f"node i serves on PORT+i, and the last of {nodes} nodes "
                                "would be past port 65535", "--metrics-port")
        masker = Masker(c.person.id for c in claims if isinstance(c, Claim))
        mask_logs(masker)
        if args.kafka not in (None, "local", "memory"):
            inputs.probe_kafka(args.kafka)
        if args.topic_prefix:
            inputs.prefix_unused(args.topic_prefix, args.kafka, args.postgres)
        out = None
        if args.out:
            out = OutDir(args.out, "clearsim run").prepare(inputs.input_files(args, scenario))
    except ClearsimError as exc:
        return fail(exc)

    from testbed.progress import ProgressDisplay
    from testbed.report import render, write
    from testbed.runner import RunOptions, RunTimeout, Simulation
    workdir = out.path if out else Path(tempfile.mkdtemp(prefix="clearsim-run-"))
    keep = out is not None      # a run without --out leaves nothing behind, unless stopped
                                # mid-run (its message names where the databases are)
    broker = None
    kafka = args.kafka
    try:
        try:
            db = out.subdir("db") if out else workdir / "db"
            if out and args.processes:
                out.subdir("logs")
            if kafka == "local":
                from clearsim.testing.kafka import BrokerUnavailable, KafkaBroker
                broker = KafkaBroker(workdir=out.subdir("kafka") if out else workdir / "kafka")
                try:
                    broker.start()
                except BrokerUnavailable as exc:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    raise ClearsimError(ErrorCode.BROKER_UNAVAILABLE, "could not start a "
                                        f"local Kafka broker: {first} (its log: "
                                        f"{broker.workdir / 'broker.log'})", "--kafka") from None
                kafka = broker.bootstrap
            sim = Simulation(scenario, claims, RunOptions(
                workdir=db, kafka=None if kafka == "memory" else kafka,
                postgres=args.postgres, prefix=args.topic_prefix, partitions=args.partitions,
                timeout=args.timeout, answer_timeout=args.answer_timeout,
                speedup=args.speedup, faults=extra, rate=args.rate, in_flight=args.in_flight,
                repair=False if args.no_repair else None, broker=broker,
                processes=args.processes, node_args=tuple(inputs.claim_arguments(args)),
                metrics_port=args.metrics_port))
            try:
                with ProgressDisplay(sim.progress, sys.stderr,
                                     enabled=not (args.quiet or args.json)):
                    result = sim.run()
            except RunTimeout as exc:
                print(f"clearsim: {masker.text(str(exc))}", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                keep = True
                print(f"\nclearsim: {ErrorCode.INTERRUPTED.value}: interrupted while "
                      f"{sim.progress.phase}; every node was "
                      f"stopped. What they had committed is in {db} (no report was "
                      "written); a new run with the same --out starts afresh.",
                      file=sys.stderr)
                return EXIT_INTERRUPTED
        except ClearsimError as exc:
            return fail(exc)
        except Exception as exc:
            unreachable = server_failure(exc, args)
            if unreachable is None:
                raise
            if unreachable.code is ErrorCode.BROKER_UNAVAILABLE and (
                    args.kafka in (None, "memory") or scenario.faults or extra):
                # no broker to blame: the run's own faults left a send no way through
                print(f"clearsim: {unreachable.code.value}: the run could not go on: "
                      f"{unreachable.rejection.message} (under the faults it injects)",
                      file=sys.stderr)
                return 1
            return fail(unreachable)
        finally:
            if broker is not None:
                broker.stop()
        if out:
            try:
                write(result, out.path)
                if args.report:
                    from testbed.html_report import write_report
                    write_report(out.path)
            except OSError as exc:
                return fail(ClearsimError(ErrorCode.OUTPUT_DIR_INVALID, f"the results could "
                                          f"not be written to {out.path}: "
                                          f"{exc.strerror or exc}", "--out"))
            finally:
                out.finish()
        if args.json:
            print_out(json.dumps(result.summary, indent=2))
        elif not args.quiet:
            if print_out(render(result)) and args.out:
                print_out(f"\n  per-claim results and summary.json in {args.out}")
        return 0 if result.ok else 1
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def server_failure(exc: Exception, args) -> ClearsimError | None:
    """A broker or database that failed the run (not a mistake of clearsim's), as the
    error the run ends with, or None."""
    from clearsim.bus import BusError
    from testbed.inputs import one_line
    if isinstance(exc, BusError):
        return ClearsimError(ErrorCode.BROKER_UNAVAILABLE, one_line(exc), "--kafka")
    try:
        from sqlalchemy.exc import DBAPIError
    except ImportError:      # pragma: no cover
        return None
    if isinstance(exc, DBAPIError) and args.postgres:
        from clearsim.db import safe_url
        return ClearsimError(ErrorCode.DATABASE_UNAVAILABLE,
                             f"PostgreSQL at {safe_url(args.postgres)}: "
                             f"{one_line(exc.orig)}", "--postgres")
    return None


def extra_faults(scenario, texts: list[str]) -> tuple:
    """``--fault`` arguments, checked like the scenario's own ``[[fault]]`` tables."""
    from clearsim.faults import parse_fault, parse_fault_arg
    taken = {f.id for f in scenario.faults}
    out = []
    for i, text in enumerate(texts):
        fault = parse_fault(parse_fault_arg(text), f"--fault {text}",
                            index=len(scenario.faults) + i, seed=scenario.sim.seed,
                            nodes=scenario.node_ids())
        if fault.id in taken:
            raise ClearsimError(ErrorCode.SCENARIO_INVALID,
                                f"--fault {text}: fault id {fault.id!r} is taken", "--fault")
        taken.add(fault.id)
        out.append(fault)
    return tuple(out)

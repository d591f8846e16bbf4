"""``clearsim run``: a scenario's claims through hub, regions and hospitals, then a report."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from clearsim.errors import ClearsimError, ErrorCode


def add_parser(sub) -> None:
    from testbed.inputs import add_claim_options
    p = sub.add_parser(
        "run", help="run a scenario end to end (hub, regions, hospitals) and report",
        description="Run every claim of a scenario through the national hub, the region "
                    "nodes and the hospital nodes, on the in-process bus (default) or a "
                    "real Kafka broker, and report what each party recorded.")
    add_claim_options(p)
    p.add_argument("--kafka", metavar="HOST:PORT",
                   default=os.environ.get("CLEARSIM_KAFKA"),
                   help="bootstrap servers of a Kafka cluster (env CLEARSIM_KAFKA); "
                        "'local' starts the project's own single broker for the run")
    p.add_argument("--postgres", metavar="URL",
                   default=os.environ.get("CLEARSIM_POSTGRES_URL"),
                   help="PostgreSQL server URL (postgresql+psycopg://user@host:port/db); "
                        "one database per node is created (env CLEARSIM_POSTGRES_URL); "
                        "default: one SQLite file per node")
    p.add_argument("--out", type=Path, help="write summary.json, claims.json, claims.csv "
                                             "and the node databases here")
    p.add_argument("--processes", action="store_true",
                   help="every node its own `clearsim node` process (needs --kafka); the "
                        "nodes' logs go to OUT/logs")
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve Prometheus metrics while the run lasts: every node's families "
                        "on PORT; with --processes node i serves on PORT+i (0: each a free "
                        "port, in its log)")
    p.add_argument("--report", action="store_true",
                   help="also write OUT/report.html, the run's report (clearsim report)")
    p.add_argument("--topic-prefix", help="topic prefix (default: unique per run)")
    p.add_argument("--partitions", type=int, default=3, help="partitions per topic")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="wall seconds to wait for progress: no claim finishing, or a phase "
                        "not reaching its end, for this long fails the run")
    p.add_argument("--rate", type=float, metavar="CLAIMS_PER_S",
                   help="offer claims at this many per wall second, evenly (open loop); "
                        "default: as fast as the nodes take them")
    p.add_argument("--in-flight", type=int, default=2000, metavar="N",
                   help="claims in flight at most (default 2000)")
    p.add_argument("--speedup", type=float,
                   help="pace the run: simulated time runs this many times faster than the "
                        "wall clock (86400 = one simulated day a second); default: flat out")
    p.add_argument("--answer-timeout", type=float, default=30.0,
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
                        "3 a server could not be reached, 130 interrupted)")
    p.add_argument("-v", "--verbose", action="store_true", help="log node activity")
    p.set_defaults(handler=main)


def main(args) -> int:
    from testbed import inputs
    from testbed.progress import ProgressDisplay
    from testbed.report import render, write
    from testbed.runner import RunOptions, RunTimeout, Simulation

    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(asctime)s %(threadName)s %(levelname)s %(message)s")
    if not args.verbose:   # the Kafka client reports every refused connection while it retries
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        scenario, claims = inputs.load(args)
        extra = extra_faults(scenario, args.fault)
        if args.report and not args.out:
            raise ClearsimError(ErrorCode.INVALID_INPUT, "--report writes OUT/report.html: "
                                "give --out DIR", "--report")
        if args.processes and not args.kafka:
            raise ClearsimError(ErrorCode.INVALID_INPUT, "--processes needs a Kafka cluster: "
                                "--kafka HOST:PORT or --kafka local", "--processes")
    except ClearsimError as exc:
        print(f"clearsim: {exc}", file=sys.stderr)
        return 2

    broker = None
    kafka = args.kafka
    workdir = args.out or Path(tempfile.mkdtemp(prefix="clearsim-run-"))
    # Each run starts from empty node databases: an --out directory is overwritten.
    shutil.rmtree(workdir / "db", ignore_errors=True)
    if kafka == "local":
        from clearsim.testing.kafka import BrokerUnavailable, KafkaBroker
        try:
            broker = KafkaBroker(workdir=workdir / "kafka").start()
        except BrokerUnavailable as exc:
            print(f"clearsim: BROKER_UNAVAILABLE: could not start a local Kafka broker: {exc}",
                  file=sys.stderr)
            return 3
        kafka = broker.bootstrap
    try:
        sim = Simulation(scenario, claims, RunOptions(
            workdir=workdir / "db", kafka=kafka, postgres=args.postgres,
            prefix=args.topic_prefix, partitions=args.partitions, timeout=args.timeout,
            answer_timeout=args.answer_timeout, speedup=args.speedup, faults=extra,
            rate=args.rate, in_flight=args.in_flight,
            repair=False if args.no_repair else None, broker=broker,
            processes=args.processes, node_args=tuple(inputs.claim_arguments(args)),
            metrics_port=args.metrics_port))
        try:
            with ProgressDisplay(sim.progress, sys.stderr, enabled=not (args.quiet or args.json)):
                result = sim.run()
        except RunTimeout as exc:
            print(f"clearsim: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"\nclearsim: interrupted while {sim.progress.phase}; every node was "
                  f"stopped. What they had committed is in {workdir / 'db'} (no report was "
                  "written); a new run with the same --out starts afresh.", file=sys.stderr)
            return 130
    except ClearsimError as exc:
        print(f"clearsim: {exc}", file=sys.stderr)
        return 3
    finally:
        if broker is not None:
            broker.stop()
    if args.out:
        write(result, args.out)
        if args.report:
            from testbed.html_report import write_report
            write_report(args.out)
    if args.json:
        print(json.dumps(result.summary, indent=2))
    elif not args.quiet:
        print(render(result))
        if args.out:
            print(f"\n  per-claim results and summary.json in {args.out}")
    return 0 if result.ok else 1


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

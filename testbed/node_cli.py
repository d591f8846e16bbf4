"""``clearsim node hub|region|hospitals``: one node of a test bed as its own process.

The node reads its topic on a real Kafka cluster, keeps its state in its own database and
serves Prometheus metrics when asked to. SIGTERM or SIGINT stops it cleanly: the batch in
hand is finished and committed, then the consumer and producer are closed. Started again
with the same database and prefix, it goes on from its database and its group's committed
offsets (what it had not committed is delivered again and deduplicated).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from clearsim.errors import ClearsimError, ErrorCode
from testbed import inputs

log = logging.getLogger("clearsim.node")

KINDS = ("hub", "region", "hospitals")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "node", help="run one node (the hub, a region, a region's hospitals) as a process",
        description="Run one node of a scenario as its own process on a Kafka cluster: the "
                    "national hub, one region's platform, or the hospital node of one "
                    "region. Every option may also come from its environment variable.")
    p.add_argument("kind", choices=KINDS, help="which node")
    inputs.add_claim_options(p)
    p.add_argument("--code", help="the region of a region node (e.g. 360400)")
    p.add_argument("--region", help="the region of a hospitals node (e.g. 360400)")
    add_common_options(p)
    p.add_argument("--instance", default=os.environ.get("CLEARSIM_INSTANCE") or None,
                   help="this process's static member id in its node's consumer group (env "
                        "CLEARSIM_INSTANCE): restarted with the same id it takes its "
                        "partitions back at once; two processes of one node need two ids; "
                        "default: a dynamic member (a restart waits out the old session)")
    p.set_defaults(handler=main)


# Each option's environment variable, what checks its value, and its default.
COMMON = (("--kafka", "CLEARSIM_KAFKA", inputs.kafka_servers, None),
          ("--db", "CLEARSIM_DB", inputs.node_databases, "out/nodes"),
          ("--prefix", "CLEARSIM_PREFIX", inputs.prefix, "clearsim"),
          ("--partitions", "CLEARSIM_PARTITIONS", inputs.partitions, 3),
          ("--metrics-port", "CLEARSIM_METRICS_PORT", inputs.port, None))


def add_common_options(p) -> None:
    p.add_argument("--kafka", metavar="HOST:PORT[,...]", type=inputs.kafka_servers,
                   help="bootstrap servers of the Kafka cluster (env CLEARSIM_KAFKA)")
    p.add_argument("--db", metavar="URL_OR_DIR", type=inputs.node_databases,
                   help="a PostgreSQL server URL (each node has its own database "
                        "PREFIX_NODE on it, created if missing) or a directory of SQLite "
                        "files NODE.db (env CLEARSIM_DB; default out/nodes)")
    p.add_argument("--prefix", type=inputs.prefix,
                   help="topic prefix (env CLEARSIM_PREFIX; default clearsim)")
    p.add_argument("--partitions", type=inputs.partitions,
                   help="partitions of a topic the node creates (env CLEARSIM_PARTITIONS; "
                        "default 3)")
    p.add_argument("--metrics-port", type=inputs.port,
                   help="serve Prometheus metrics on this port, 0 for any free one "
                        "(env CLEARSIM_METRICS_PORT); default: no metrics server")


def check_common(args) -> None:
    """The common options, each from its flag or else its environment variable, checked
    alike (a bad value names the variable it came from)."""
    for option, variable, convert, default in COMMON:
        inputs.from_environment(args, option, variable, convert, default)
    if not args.kafka or args.kafka in ("local", "memory"):
        raise ClearsimError(ErrorCode.INVALID_INPUT,
                            "a node process needs the bootstrap servers of a Kafka cluster: "
                            "--kafka HOST:PORT or CLEARSIM_KAFKA", "--kafka")
    from testbed.processes import is_server_url
    if not is_server_url(args.db):
        directory = Path(args.db.removeprefix("sqlite:///"))
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=directory):
                pass
        except OSError as exc:
            raise ClearsimError(ErrorCode.OUTPUT_DIR_INVALID,
                                f"{directory} cannot hold the nodes' SQLite files: "
                                f"{exc.strerror or exc}", "--db") from None


def main(args) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    stopping = threading.Event()

    def on_signal(signum, _frame) -> None:
        if not stopping.is_set():
            log.info("%s: %s received: finishing the batch in hand", node_label(args),
                     signal.Signals(signum).name)
        stopping.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        check_common(args)
    except ClearsimError as exc:
        from testbed.cli import fail
        return fail(exc, "clearsim node")
    wait = START_RETRY[0]
    while True:     # a database server still starting (or restarting) is waited for
        try:
            node, server = build(args)
            break
        except ClearsimError as exc:
            if exc.code is not ErrorCode.DATABASE_UNAVAILABLE:
                from testbed.cli import fail
                return fail(exc, "clearsim node")
            log.warning("%s: cannot start yet: %s; again in %.1f s", node_label(args), exc,
                        wait)
            if stopping.wait(wait):
                return 0
            wait = min(wait * 2, START_RETRY[1])
    try:
        return serve(node, stopping)
    finally:
        if server is not None:
            server.close()


def node_label(args) -> str:
    return args.kind + (f" {args.code or args.region}" if args.kind != "hub" else "")


def build(args):
    """The node this process runs, and its metrics server (or None)."""
    from clearsim.bus import connect
    from clearsim.codec import Codec
    from clearsim.messages import HUB, hospitals_node, region_node
    from hospital_node import node as hospital_wiring
    from hub import node as hub_wiring
    from region_node import node as region_wiring
    from clearsim.privacy import Masker, mask_logs
    from clearsim.sim.claims import Claim
    from testbed.processes import node_db_url
    from testbed.topology import build_topology

    scenario, claims = inputs.load(args)
    valid = [c for c in claims if isinstance(c, Claim) and c.hospital in scenario.hospitals]
    mask_logs(Masker(c.person.id for c in valid))     # its log names no person in full
    topology = build_topology(scenario, valid)
    if args.kind == "hub":
        node_id, config, wiring = HUB, topology.hub, hub_wiring
    elif args.kind == "region":
        code = _code(args.code, "--code", topology.regions)
        node_id, config, wiring = region_node(code), topology.regions[code], region_wiring
    else:
        code = _code(args.region, "--region", topology.hospitals)
        node_id, config, wiring = hospitals_node(code), topology.hospitals[code], hospital_wiring
    sensor, server, registry = None, None, None
    if args.metrics_port is not None:
        from prometheus_client import CollectorRegistry

        from clearsim.metrics import PrometheusSensor, serve_metrics
        registry = CollectorRegistry()
        sensor = PrometheusSensor(registry)
    bus = connect(args.kafka, default_partitions=args.partitions,
                  instance=args.instance)
    node = wiring.build(config, db_url=node_db_url(args.db, args.prefix, node_id), bus=bus,
                        codec=Codec(), prefix=args.prefix, sensor=sensor)
    if registry is not None:
        import importlib
        package = {"hub": "hub", "region": "region_node", "hospitals": "hospital_node"}
        collector = importlib.import_module(f"{package[args.kind]}.metrics").collector
        registry.register(collector(node))
        try:
            server = serve_metrics(args.metrics_port, registry)
        except (OSError, OverflowError) as exc:
            raise ClearsimError(ErrorCode.INVALID_INPUT, f"cannot serve metrics on port "
                                f"{args.metrics_port}: {exc}", "--metrics-port") from None
    from clearsim.db import safe_url
    log.info("%s: kafka %s, database %s, topic %s%s", node_id, args.kafka,
             safe_url(node.db.url), node.topic,
             f", metrics on port {server.port}" if server is not None else "")
    return node, server


def _code(code: str | None, flag: str, known: dict) -> str:
    if not code:
        raise ClearsimError(ErrorCode.INVALID_INPUT, f"{flag} CODE is required", flag)
    if code not in known:
        raise ClearsimError(ErrorCode.REGION_UNKNOWN,
                            f"{flag} {code}: not a region of the scenario with such a node "
                            f"(known: {', '.join(sorted(known)[:10])})", flag)
    return code


START_RETRY = (0.5, 5.0)     # wall seconds between tries to reach the cluster at start


def serve(node, stopping: threading.Event) -> int:
    """Start the node (retrying while the cluster or the database is not there yet), step
    it until told to stop, then close it. Exit status 0 after a clean stop."""
    from clearsim.bus import BusError
    from testbed.runner import NodeThread

    wait = START_RETRY[0]
    while not stopping.is_set():
        try:
            node.start()
            break
        except (BusError, ClearsimError) as exc:
            log.warning("%s: cannot start yet: %s; again in %.1f s", node.node_id, exc, wait)
            stopping.wait(wait)
            wait = min(wait * 2, START_RETRY[1])
    else:
        node.db.dispose()
        return 0
    log.info("%s: started", node.node_id)
    thread = NodeThread(node)
    thread.start()
    started = time.monotonic()
    held = None
    while not stopping.wait(1.0):
        if not thread.is_alive():
            log.error("%s: its loop ended unexpectedly", node.node_id)
            break
        now = node.assignment()
        if now != held:        # the group gave this member its share (or took it back)
            held = now
            log.info("%s: partitions held: %s", node.node_id,
                     ", ".join(f"{tp.topic}[{tp.partition}]" for tp in now) or "none")
    thread.stopping.set()
    thread.join()
    node.stop()
    node.db.dispose()
    log.info("%s: stopped after %.0f s (%d step errors)", node.node_id,
             time.monotonic() - started, thread.errors)
    return 0

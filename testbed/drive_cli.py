"""``clearsim drive``: the outside world of a test bed whose nodes run as processes.

Persons file, patients arrive, the calendar starts each day's reconciliation and each
month's clearing: what ``clearsim run`` plays, against nodes started by someone else
(``clearsim node`` processes, compose services). The driver reads each node's database
(``--db``: the same server URL or directory the nodes were given) to know when to go on and,
at the end, to report what each party recorded, as ``clearsim run`` does.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from clearsim.errors import ClearsimError


def add_parser(sub) -> None:
    from testbed.inputs import add_claim_options
    from testbed.node_cli import add_common_options
    p = sub.add_parser(
        "drive", help="drive a scenario through node processes started elsewhere",
        description="Send a scenario's filings and claims to running node processes, drive "
                    "reconciliation and clearing on the simulated calendar, and report what "
                    "each party recorded (clearsim run's report).")
    add_claim_options(p)
    add_common_options(p)
    p.add_argument("--out", type=Path, help="write summary.json, claims.json, claims.csv ...")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="wall seconds to wait for progress before the run fails")
    p.add_argument("--startup-timeout", type=float, default=120.0,
                   help="wall seconds to wait for every node to be up")
    p.add_argument("--in-flight", type=int, default=2000, metavar="N",
                   help="claims in flight at most (default 2000)")
    p.add_argument("--report", action="store_true", help="also write OUT/report.html")
    p.add_argument("--json", action="store_true", help="print summary.json instead of text")
    p.set_defaults(handler=main)


def main(args) -> int:
    from testbed import inputs
    from testbed.node_cli import check_common
    from testbed.report import render, write
    from testbed.runner import RunOptions, RunTimeout, Simulation

    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        check_common(args)
        scenario, claims = inputs.load(args)
        out = args.out or Path("out/drive")
        sim = Simulation(scenario, claims, RunOptions(
            workdir=out / "driver", kafka=args.kafka, prefix=args.prefix,
            partitions=args.partitions, timeout=args.timeout, in_flight=args.in_flight,
            drive_only=True, nodes_db=args.db, startup_timeout=args.startup_timeout))
        try:
            result = sim.run()
        except RunTimeout as exc:
            print(f"clearsim drive: {exc}", file=sys.stderr)
            return 1
    except ClearsimError as exc:
        print(f"clearsim drive: {exc}", file=sys.stderr)
        return 2
    write(result, out)
    if args.report:
        from testbed.html_report import write_report
        write_report(out)
    print(json.dumps(result.summary, indent=2) if args.json else render(result))
    if not args.json:
        print(f"\n  per-claim results and summary.json in {out}")
    return 0 if result.ok else 1

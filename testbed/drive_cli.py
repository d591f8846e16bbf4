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

from clearsim.errors import ClearsimError, ErrorCode


def add_parser(sub) -> None:
    from testbed import inputs
    from testbed.node_cli import add_common_options
    from testbed.run_cli import out_dir
    p = sub.add_parser(
        "drive", help="drive a scenario through node processes started elsewhere",
        description="Send a scenario's filings and claims to running node processes, drive "
                    "reconciliation and clearing on the simulated calendar, and report what "
                    "each party recorded (clearsim run's report).")
    inputs.add_claim_options(p)
    add_common_options(p)
    p.add_argument("--out", type=out_dir,
                   help="write summary.json, claims.json, claims.csv ... (default out/drive; "
                        "nothing in it that a run did not write is deleted or overwritten)")
    p.add_argument("--timeout", type=inputs.positive_float, default=120.0,
                   help="wall seconds to wait for progress before the run fails")
    p.add_argument("--startup-timeout", type=inputs.positive_float, default=120.0,
                   help="wall seconds to wait for every node to be up")
    p.add_argument("--in-flight", type=inputs.positive_int, default=2000, metavar="N",
                   help="claims in flight at most (default 2000)")
    p.add_argument("--report", action="store_true", help="also write OUT/report.html")
    p.add_argument("--json", action="store_true", help="print summary.json instead of text")
    p.set_defaults(handler=main)


def main(args) -> int:
    from clearsim.privacy import Masker, mask_logs
    from clearsim.sim.claims import Claim
    from clearsim.sim.files import print_out
    from testbed import inputs
    from testbed.cli import fail
    from testbed.node_cli import check_common
    from testbed.outdir import DRIVE_DIRS, OutDir
    from testbed.run_cli import server_failure

    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        check_common(args)
        scenario, claims = inputs.load(args)
        masker = Masker(c.person.id for c in claims if isinstance(c, Claim))
        mask_logs(masker)
        inputs.probe_kafka(args.kafka)
        out = OutDir(args.out or Path("out/drive"), "clearsim drive",
                     dirs=DRIVE_DIRS).prepare(inputs.input_files(args, scenario))
        from testbed.report import render, write
        from testbed.runner import RunOptions, RunTimeout, Simulation
        sim = Simulation(scenario, claims, RunOptions(
            workdir=out.subdir("driver"), kafka=args.kafka, prefix=args.prefix,
            partitions=args.partitions, timeout=args.timeout, in_flight=args.in_flight,
            drive_only=True, nodes_db=args.db, startup_timeout=args.startup_timeout))
        try:
            result = sim.run()
        except RunTimeout as exc:
            print(f"clearsim drive: {masker.text(str(exc))}", file=sys.stderr)
            return 1
    except ClearsimError as exc:
        return fail(exc, "clearsim drive")
    except Exception as exc:
        args.postgres = args.db if "://" in str(args.db) else None
        unreachable = server_failure(exc, args)
        if unreachable is None:
            raise
        return fail(unreachable, "clearsim drive")
    try:
        write(result, out.path)
        if args.report:
            from testbed.html_report import write_report
            write_report(out.path)
    except OSError as exc:
        return fail(ClearsimError(ErrorCode.OUTPUT_DIR_INVALID, f"the results could not be "
                                  f"written to {out.path}: {exc.strerror or exc}", "--out"),
                    "clearsim drive")
    finally:
        out.finish()
    if print_out(json.dumps(result.summary, indent=2) if args.json else render(result)) \
            and not args.json:
        print_out(f"\n  per-claim results and summary.json in {out.path}")
    return 0 if result.ok else 1

"""``clearsim report``: a run directory's results as one HTML page that opens offline."""

from __future__ import annotations

import sys
from pathlib import Path

from clearsim.errors import ClearsimError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "report", help="write a run's results as one self-contained HTML page",
        description="Read what `clearsim run --out RUN_DIR` wrote and write one HTML file "
                    "with the summary tables and charts (latencies, reconciliation and "
                    "payback over simulated time, clearing flows, receivables ageing, cases "
                    "and faults). The page needs no network to open.")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                   help="a directory written by `clearsim run --out`")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="where to write the page (default: RUN_DIR/report.html)")
    p.set_defaults(handler=main)


def main(args) -> int:
    from testbed.html_report import write_report
    try:
        path = write_report(args.run_dir, args.out)
    except ClearsimError as exc:
        print(f"clearsim: {exc}", file=sys.stderr)
        return 2
    print(f"report written to {path}")
    return 0

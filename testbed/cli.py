"""The ``clearsim`` command: one entry point, one module per subcommand."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clearsim",
        description="Cross-region medical-insurance clearing hub simulator.")
    sub = parser.add_subparsers(dest="command", required=True)

    from clearsim.sim import settle_cli
    from testbed import dlq_cli, drive_cli, faults_cli, node_cli, run_cli
    run_cli.add_parser(sub)
    settle_cli.add_parser(sub)
    faults_cli.add_parser(sub)
    node_cli.add_parser(sub)
    drive_cli.add_parser(sub)
    dlq_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

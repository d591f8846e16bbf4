"""The ``clearsim`` command: one entry point, one module per subcommand.

Whatever goes wrong ends in one line on standard error, ``clearsim: CODE (field): what``,
and an exit status (README, "Exit status"): 2 for a mistake in what was given (a flag, an
environment variable, a file), 3 when a server cannot be reached, 130 after Ctrl-C, 4 for
a failure of clearsim's own (set ``CLEARSIM_TRACEBACK=1`` to see its traceback). Output
piped into a reader that stops early (``| head -1``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import os
import sys

from clearsim.errors import ClearsimError, ErrorCode

EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130
UNREACHABLE = frozenset({ErrorCode.BROKER_UNAVAILABLE, ErrorCode.DATABASE_UNAVAILABLE})


class Parser(argparse.ArgumentParser):
    """argparse, with a mistake on the command line told in one line with its code."""

    def error(self, message: str):
        field = ""
        if message.startswith("argument ") and ": " in message:
            name, message = message.removeprefix("argument ").split(": ", 1)
            field = f" ({name.split('/')[-1]})"
        print(f"clearsim: {ErrorCode.INVALID_INPUT.value}{field}: {message} "
              f"(see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="clearsim",
        description="Cross-region medical-insurance clearing hub simulator.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    from clearsim.sim import settle_cli
    from testbed import dlq_cli, drive_cli, faults_cli, node_cli, report_cli, run_cli
    run_cli.add_parser(sub)
    settle_cli.add_parser(sub)
    faults_cli.add_parser(sub)
    report_cli.add_parser(sub)
    node_cli.add_parser(sub)
    drive_cli.add_parser(sub)
    dlq_cli.add_parser(sub)
    return parser


def exit_status(error: ClearsimError) -> int:
    return EXIT_UNREACHABLE if error.code in UNREACHABLE else EXIT_BAD_INPUT


def fail(error: ClearsimError, prog: str = "clearsim") -> int:
    """``error`` as the one line a command ends with; its exit status."""
    print(f"{prog}: {' '.join(str(error).split())}", file=sys.stderr)
    return exit_status(error)


def main(argv: list[str] | None = None) -> int:
    from clearsim.sim.files import silence_stdout
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        return int(args.handler(args) or 0)
    except BrokenPipeError:          # the reader of our output went away: nothing to say
        silence_stdout()
        return 0
    except KeyboardInterrupt:
        print(f"\nclearsim: {ErrorCode.INTERRUPTED.value}: interrupted (Ctrl-C)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except ClearsimError as exc:
        return fail(exc)
    except Exception as exc:
        if os.environ.get("CLEARSIM_TRACEBACK"):
            raise
        where = _where(exc)
        print(f"clearsim: {ErrorCode.INTERNAL_ERROR.value}: {type(exc).__name__}: "
              f"{' '.join(str(exc).split())[:300]}{where} (a failure of clearsim itself; "
              "CLEARSIM_TRACEBACK=1 shows its traceback)", file=sys.stderr)
        return EXIT_INTERNAL


def _where(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return ""
    code = tb.tb_frame.f_code
    return f" at {os.path.basename(code.co_filename)}:{tb.tb_lineno}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

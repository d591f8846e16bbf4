"""What ``run``, ``drive`` and ``node`` read before anything starts: the scenario and its
claims. Node processes read the same claims as the driver: a region knows its insured
persons from them (``testbed.topology``), so every process of a test bed must be given the
same scenario and the same claim options."""

from __future__ import annotations

import argparse
from pathlib import Path

from clearsim.errors import ClearsimError, ErrorCode


def add_claim_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", type=Path, help="scenario TOML file")
    p.add_argument("--claims", type=Path,
                   help="claims JSON file (default: the scenario's [sim] claims)")
    p.add_argument("--workload", action="store_true",
                   help="generate claims from the scenario's [workload] even when it names "
                        "a claims file")
    p.add_argument("--days", type=int, help="simulated days of a [workload] (default: sim.days)")


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
    from clearsim.sim.claims import load_claims, parse_claims
    from clearsim.sim.scenario import load_scenario
    from clearsim.sim.workload import stream

    scenario = load_scenario(args.scenario)
    claims_path = args.claims or (None if args.workload else scenario.sim.claims)
    if args.workload and scenario.workload is None:
        raise ClearsimError(ErrorCode.SCENARIO_INVALID,
                            f"{args.scenario}: --workload given but the scenario declares "
                            "no [workload]", "workload")
    if args.days is not None and args.days < 1:
        raise ClearsimError(ErrorCode.INVALID_INPUT,
                            f"--days {args.days}: must be at least 1", "--days")
    if claims_path is not None:
        return scenario, load_claims(claims_path)
    if scenario.workload is not None:
        return scenario, parse_claims(stream(scenario.workload, scenario, scenario.sim.start,
                                             args.days or scenario.sim.days,
                                             scenario.sim.seed))
    raise ClearsimError(ErrorCode.SCENARIO_INVALID,
                        f"{args.scenario}: no claims to run: give --claims FILE, set [sim] "
                        "claims or declare a [workload] in the scenario", "claims")

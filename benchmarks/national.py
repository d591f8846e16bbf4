"""The national month: 390 regions, 27,608 hospitals, about 227,000 cross-region inpatient
claims over 30 simulated days (DOMAIN.md §7), reconciled and cleared.

    python benchmarks/national.py [--quick] [--days N --scale F] [--cap SECONDS]

Measures what the scenario costs before anything runs (generating it, loading it,
generating and parsing its claims: 227,000 claims of about 20 items are millions of Python
objects), then runs it with ``clearsim run`` on the in-process bus with SQLite, in a process
of its own. Targets: under 20 minutes and under 2 GiB. The national year (2.72 million
claims) is the moonshot, extrapolated from the month and labelled so.

``--days N --scale F`` runs a cut-down copy instead (the same regions and hospitals, the
flows times F, N days) and extrapolates the month from it; ``--cap`` is the wall time the
run may take (default 30 minutes) before it is stopped and extrapolated from what the
hospitals' ledgers say it had done. Quick mode measures the loading on one day and does not
run the month.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(ROOT), str(ROOT / "benchmarks")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import shape  # noqa: E402
import subrun  # noqa: E402
from figures import Env, Figure  # noqa: E402
from results import duration  # noqa: E402

SECTION = "national month"
SCENARIO = ROOT / "scenarios" / "national-month.toml"
TARGET_MINUTES = 20.0
TARGET_MIB = 2048.0
CAP = 1800.0                       # wall seconds the month may run before it is stopped
MONTH = shape.NATIONAL_MONTH_CLAIMS
YEAR = shape.NATIONAL_YEAR_CLAIMS


def measure(env: Env, days: int | None = None, scale: float | None = None,
            cap: float | None = None) -> list[Figure]:
    work = env.workdir / "national"
    work.mkdir(parents=True, exist_ok=True)
    figures = generator(work)
    cut = days is not None or scale is not None
    if cut:
        days, scale = days or 3, scale or 0.1
        scenario = work / f"national-{days}d-x{scale:g}.toml"
        scenario.write_text(shape.build(shape.cut_down(days, scale)))
    else:
        scenario = SCENARIO
    load_days = 1 if env.quick else None       # the committed month's, whatever is run
    costs = load_cost(SCENARIO, load_days)
    figures += loading(costs, load_days)
    if env.quick and not cut:
        figures.append(Figure(SECTION, "month: wall time", None, "min", TARGET_MINUTES,
                              False, note="quick mode: the month is not run"))
        return figures
    cap = cap or CAP
    run = subrun.run(scenario, work / "run", "--workload", "--timeout", str(cap),
                     timeout=cap + 60, label="national" + (" (cut down)" if cut else ""))
    figures += running(run, costs, cut, days, scale, cap)
    return figures


def generator(work: Path) -> list[Figure]:
    """Writing the scenario: how long, how big, and whether the committed one is current."""
    started = time.perf_counter()
    text = shape.build(shape.NATIONAL)
    seconds = time.perf_counter() - started
    committed = SCENARIO.read_text() if SCENARIO.exists() else None
    same = committed == text
    if not same:
        (work / "national-month.generated.toml").write_text(text)
    return [Figure(SECTION, "scenario: generate", seconds, "s", higher_is_better=False,
                   note=f"{len(text) / 1e6:.1f} MB of TOML; the committed file "
                        + ("is what the generator writes" if same else
                           "DIFFERS from what the generator writes: regenerate it "
                           "(python benchmarks/shape.py --national)"),
                   detail={"bytes": len(text), "committed_is_current": same})]


def load_cost(scenario: Path, days: int | None) -> dict:
    """Each step before a run starts, in a fresh process: seconds and peak memory."""
    command = [sys.executable, str(Path(__file__).resolve()), "--load-cost", str(scenario)]
    if days:
        command += ["--load-days", str(days)]
    done = subprocess.run(command, cwd=ROOT, env=subrun.child_env(), capture_output=True,
                          text=True, timeout=1800)
    if done.returncode != 0:
        return {"error": f"exit code {done.returncode}"
                         + (" (killed: out of memory?)" if done.returncode == -9 else "")
                         + f" {done.stderr[-800:]}".rstrip()}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _load_cost_child(scenario: Path, days: int | None) -> None:
    from clearsim.sim.claims import Claim, parse_claims
    from clearsim.sim.scenario import load_scenario
    from clearsim.sim.workload import stream
    from testbed.topology import build_topology

    def peak() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    steps = {"start": {"seconds": 0.0, "peak_mib": peak()}}

    def step(name: str, started: float) -> None:
        steps[name] = {"seconds": time.perf_counter() - started, "peak_mib": peak()}
    t = time.perf_counter()
    scenario_ = load_scenario(scenario)
    step("load", t)
    t = time.perf_counter()
    raw = list(stream(scenario_.workload, scenario_, scenario_.sim.start,
                      days or scenario_.sim.days, scenario_.sim.seed))
    step("generate", t)
    t = time.perf_counter()
    parse_claims(raw)
    step("parse", t)
    del raw
    # What ``clearsim run`` does: each claim parsed as it is generated, its dict let go.
    t = time.perf_counter()
    claims = parse_claims(stream(scenario_.workload, scenario_, scenario_.sim.start,
                                 days or scenario_.sim.days, scenario_.sim.seed))
    step("streamed", t)
    t = time.perf_counter()
    valid = [c for c in claims if isinstance(c, Claim)]
    build_topology(scenario_, valid)
    step("topology", t)
    print(json.dumps({"steps": steps, "days": days, "claims": len(claims), "valid": len(valid),
                      "streamed_mib": _claims_mib(claims),
                      "items": sum(len(c.items) for c in valid),
                      "regions": len(scenario_.regions), "hospitals": len(scenario_.hospitals),
                      "flows": len(scenario_.workload.flows),
                      "charges_fen": sum(i.amount for c in valid for i in c.items)}))


def _claims_mib(claims: list) -> float:
    """What the parsed claims hold: each object and what it alone refers to (shared
    strings and enum members counted once)."""
    seen: set[int] = set()
    total = 0

    def size(obj) -> None:
        nonlocal total
        if id(obj) in seen:
            return
        seen.add(id(obj))
        total += sys.getsizeof(obj)
    for claim in claims:
        size(claim)
        if hasattr(claim, "items"):
            for part in (claim.claim_id, claim.date, claim.hospital, claim.person,
                         claim.person.id, claim.items, *claim.items):
                size(part)
            for item in claim.items:
                size(item.amount)
    return total / 2**20


def loading(costs: dict, days: int | None) -> list[Figure]:
    if "error" in costs:
        return [Figure(SECTION, "scenario: load", None, "s", note=f"failed: {costs['error']}")]
    steps = costs["steps"]
    claims = costs["claims"]
    per_claim_kib = ((steps["parse"]["peak_mib"] - steps["load"]["peak_mib"]) * 1024 / claims
                     if claims else None)
    scope = f"{days} day" if days else "the month"
    streamed_kib = (costs.get("streamed_mib") or 0) * 1024 / claims if claims else None
    mean_items = costs["items"] / costs["valid"] if costs["valid"] else 0
    mean_charges = costs["charges_fen"] / 100 / costs["valid"] if costs["valid"] else 0
    return [
        Figure(SECTION, "claims generated" + ("" if not days else f" ({scope})"), claims,
               "claims", note=(f"{costs['regions']} regions, {costs['hospitals']:,} hospitals, "
                               f"{costs['flows']:,} flows; {mean_items:.1f} items and "
                               f"{mean_charges:,.0f} yuan a claim (DOMAIN.md §7: about "
                               f"{MONTH:,} a month, 23,831 yuan a claim)"),
               detail=costs),
        Figure(SECTION, "scenario: load", steps["load"]["seconds"], "s",
               higher_is_better=False, note=f"peak {steps['load']['peak_mib']:.0f} MiB"),
        Figure(SECTION, f"claims: generate ({scope})", steps["generate"]["seconds"], "s",
               higher_is_better=False, note="clearsim.sim.workload.generate: dicts in the "
                                            "claims-file format"),
        Figure(SECTION, f"claims: parse ({scope})", steps["parse"]["seconds"], "s",
               higher_is_better=False, note="clearsim.sim.claims.parse_claims"),
        Figure(SECTION, f"claims: peak memory, all generated then parsed ({scope})",
               steps["parse"]["peak_mib"], "MiB", higher_is_better=False,
               note=(f"generated and parsed claims alive together: about "
                     f"{per_claim_kib:.1f} KiB a claim" if per_claim_kib else ""),
               detail={"kib_per_claim": per_claim_kib}),
        Figure(SECTION, f"claims: generated and parsed one at a time ({scope})",
               steps["streamed"]["seconds"], "s", higher_is_better=False,
               note=("as clearsim run does it (clearsim.sim.workload.stream): parsed claims "
                     f"alone are {streamed_kib:.1f} KiB a claim" if streamed_kib else
                     "as clearsim run does it (clearsim.sim.workload.stream)"),
               detail={"kib_per_claim": streamed_kib}),
    ]


def running(run, costs: dict, cut: bool, days, scale, cap: float) -> list[Figure]:
    """The month's wall time, memory and claims/s; extrapolated, and labelled so, from a
    cut-down run or from a run stopped at its cap."""
    ledgers = run.ledgers
    rate, window, how = run.sustained()
    memory = run.memory()
    kib = (costs.get("claims") and costs.get("streamed_mib")
           and costs["streamed_mib"] * 1024 / costs["claims"])     # what a run holds a claim
    month_claims = costs.get("claims") if costs.get("steps") and not costs.get("days") else MONTH
    done = ledgers.answered if ledgers else 0
    startup = run.startup
    if run.finished and not cut:
        minutes, label = run.seconds / 60, ""
    elif done and startup is not None:
        # Start-up once, then the rest of the run in proportion to the claims.
        total = month_claims or MONTH
        minutes = (startup + (run.seconds - startup) * total / done) / 60
        label = (f"extrapolated from a cut-down run ({days} days, flows x{scale:g}: "
                 f"{done:,} claims in {run.seconds:.0f} s, {startup:.0f} s of it before the "
                 "first claim)" if cut else
                 f"extrapolated: stopped after {duration(run.seconds)}"
                 f"{' (its cap)' if run.timed_out else ''} with {done:,} of "
                 f"{total:,} claims answered ({startup:.0f} s before the first claim)")
    else:
        minutes, label = None, (f"did not finish within {duration(cap)} and no claim "
                                "was answered: "
                                + ("no claim submitted yet (policies and filings still "
                                   "being distributed)" if not ledgers or not
                                   ledgers.submitted else f"{ledgers.submitted} submitted"))
    problem = run.problem() if run.finished else ""
    why_time = ""
    if minutes is None or minutes > TARGET_MINUTES:
        why_time = (f"The run spent {startup:.0f} s before its first claim" if startup
                    else f"The run submitted no claim in {run.seconds / 60:.0f} min")
        why_time += (f"; then {rate:.1f} claims/s ({how})" if rate else "") + "."
        held, regions = subrun.policies_held(run.out / "db")
        if held is not None and (startup is None or run.timed_out):
            wanted = regions * regions
            why_time += (f" When it stopped, the regions held {held:,} of the {wanted:,} "
                         "policy copies a start needs (every region's policy delivered to "
                         "every region, one message each)")
            why_time += (f": at that pace the start alone would take about "
                         f"{run.seconds * wanted / held / 3600:.1f} h." if held else ".")
    memory_note = ("of the run so far (stopped at its cap)" if run.timed_out
                   else "the run's process")
    if cut and kib:
        memory_note = (f"extrapolated: the cut-down run's peak ({memory:,.0f} MiB) + "
                       f"{kib:.1f} KiB for each further claim of the month")
        memory += kib * max(0, (month_claims or MONTH) - run.claims) / 1024
    figures = [
        Figure(SECTION, "month: wall time", minutes, "min", TARGET_MINUTES, False,
               note=label or problem or f"{run.claims:,} claims, exit code {run.exit_code}",
               detail={"headline": True, "why": why_time, "seconds": run.seconds,
                       "startup_seconds": startup, "answered": done, "cut": cut,
                       "exit_code": run.exit_code,
                       "invariants": (run.summary or {}).get("invariant_violations"),
                       "delivery_problems": (run.summary or {}).get("delivery_problems")}),
        Figure(SECTION, "month: peak memory", memory, "MiB", TARGET_MIB, False,
               note=memory_note,
               detail={"headline": True, "why": (
                   f"Before the first node starts, the claims alone take about {kib:.1f} KiB "
                   f"each ({kib * MONTH / 1024:,.0f} MiB for the month)." if kib else "")}),
        Figure(SECTION, "month: claims/s", rate, "claims/s",
               note=how + ("" if run.finished else f"; {done:,} claims answered")),
    ]
    if minutes is not None:
        figures.append(Figure(SECTION, "year (moonshot): wall time", minutes * 12 / 60, "h",
                              higher_is_better=False,
                              note="extrapolated: the month's time x 12 (2.72 million "
                                   "claims), as if linear"))
    if kib:
        year = memory + kib * (YEAR - (month_claims or MONTH)) / 1024
        figures.append(Figure(SECTION, "year (moonshot): peak memory", year, "MiB",
                              higher_is_better=False,
                              note=f"extrapolated: the month's peak + {kib:.1f} KiB for each "
                                   "further claim held in memory"))
    return figures


def main() -> None:
    import argparse
    from figures import show
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--days", type=int, help="run a cut-down copy of N days")
    parser.add_argument("--scale", type=float, help="... with the flows times F")
    parser.add_argument("--cap", type=float, help="wall seconds the run may take")
    parser.add_argument("--load-cost", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--load-days", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_cost:
        _load_cost_child(args.load_cost, args.load_days)
        return
    show(measure(Env(quick=args.quick, workdir=ROOT / "out" / "bench"), days=args.days,
                 scale=args.scale, cap=args.cap))


if __name__ == "__main__":
    main()

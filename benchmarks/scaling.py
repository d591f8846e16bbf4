"""Scaling: claims/s and peak memory as regions, hospitals and claims grow.

    python benchmarks/scaling.py [--quick]

Each point is a generated scenario (benchmarks/shape.py: the national shape cut to N
regions and H hospitals, the same claims a day) run by ``clearsim run`` in a process of its
own, on the in-process bus with SQLite:
- regions 10, 50, 100, 390 (100 hospitals);
- hospitals 100, 1,000, 10,000, 27,608 (10 regions);
- claims x1, x2, x4 (10 regions, 100 hospitals; more simulated days).
The target: flat in regions and hospitals, near linear in claims, read here as claims/s at
the large end within 20 % of the small end (ratio at least 0.8). Quick mode runs the
small end only. A point that does not finish within its time limit is reported as such,
with what the hospitals' ledgers say it had done.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(ROOT), str(ROOT / "benchmarks")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import shape  # noqa: E402
import subrun  # noqa: E402
from figures import Env, Figure  # noqa: E402

SECTION = "scaling"
PER_DAY = 100                      # claims a day at every point
DAYS = 3                           # at x1: 300 claims
REGIONS = (10, 50, 100, 390)
HOSPITALS = (100, 1_000, 10_000, shape.NATIONAL_HOSPITALS)
CLAIMS = (1, 2, 4)
FLAT = 0.8                         # ratio to the small end that counts as flat / linear


def points(quick: bool) -> list[tuple[str, int, int, int]]:
    """(axis, regions, hospitals, claims multiple); the small end is shared by the axes."""
    base = ("base", REGIONS[0], HOSPITALS[0], CLAIMS[0])
    if quick:
        return [base]
    return ([base] + [("regions", r, HOSPITALS[0], 1) for r in REGIONS[1:]]
            + [("hospitals", REGIONS[0], h, 1) for h in HOSPITALS[1:]]
            + [("claims", REGIONS[0], HOSPITALS[0], c) for c in CLAIMS[1:]])


def measure(env: Env, limit: float | None = None) -> list[Figure]:
    """``limit``: wall seconds a point may take (default 600, quick 240)."""
    limit = limit or (240 if env.quick else 600)
    days = 1 if env.quick else DAYS
    results = {}
    for axis, regions, hospitals, multiple in points(env.quick):
        name = f"r{regions}-h{hospitals}-x{multiple}"
        work = env.workdir / "scaling" / name
        work.mkdir(parents=True, exist_ok=True)
        scenario = work / "scenario.toml"
        scenario.write_text(shape.build(shape.scaling(regions, hospitals, PER_DAY,
                                                      days * multiple)))
        run = subrun.run(scenario, work / "run", "--workload", "--timeout", str(limit),
                         timeout=limit, label=f"scaling {name}")
        results[(regions, hospitals, multiple)] = run
    return figures(results, days, limit)


def figures(results: dict, days: int, limit: float) -> list[Figure]:
    out = []
    for (regions, hospitals, multiple), run in results.items():
        rate, window, how = run.sustained()
        label = f"{regions} regions, {hospitals:,} hospitals, claims x{multiple}"
        note = run.note(f"{run.claims} claims in {window or 0:.0f} s"
                        + (f", {run.startup:.0f} s of start-up before the first"
                           if run.startup else ""))
        if run.timed_out:
            ledgers = run.ledgers
            note = (f"did not finish within {limit:.0f} s: "
                    + (f"{ledgers.answered} of {ledgers.submitted} claims submitted were "
                       f"answered" if ledgers and ledgers.submitted
                       else "no claim was submitted (still starting: policies, filings)"))
            held, nodes = subrun.policies_held(run.out / "db")
            if held is not None and not (ledgers and ledgers.submitted):
                note += f"; {held:,} of the {nodes * nodes:,} policy copies a start needs held"
            rate = rate if ledgers and ledgers.answered else None
        detail = {"regions": regions, "hospitals": hospitals, "claims multiple": multiple,
                  "days": days * multiple, "claims": run.claims, "seconds": window,
                  "measured by": how, "wall_seconds": run.seconds,
                  "nodes": (run.summary or {}).get("nodes"),
                  "messages_per_claim": run.messages_per_claim()}
        out.append(Figure(SECTION, f"claims/s: {label}", rate, "claims/s", note=note,
                          detail=detail))
        out.append(Figure(SECTION, f"peak memory: {label}", run.memory(), "MiB",
                          higher_is_better=False, note=f"{run.seconds:.0f} s wall in all",
                          detail=detail))
    base = results.get((REGIONS[0], HOSPITALS[0], 1))
    for axis, ends in (("regions", [(r, HOSPITALS[0], 1) for r in REGIONS[1:]]),
                       ("hospitals", [(REGIONS[0], h, 1) for h in HOSPITALS[1:]]),
                       ("claims", [(REGIONS[0], HOSPITALS[0], c) for c in CLAIMS[1:]])):
        for key in ends:
            if key not in results or base is None:
                continue
            out += ratios(axis, key, results[key], base)
    return out


def ratios(axis: str, key: tuple, run, base) -> list[Figure]:
    """claims/s and peak memory at the large end over the small end of an axis. A point
    stopped at its time limit is compared over the claims it answered, and says so."""
    regions, hospitals, multiple = key
    small = {"regions": f"{REGIONS[0]}", "hospitals": f"{HOSPITALS[0]:,}",
             "claims": "x1"}[axis]
    large = {"regions": f"{regions}", "hospitals": f"{hospitals:,}",
             "claims": f"x{multiple}"}[axis]
    rate, _, _ = run.sustained()
    base_rate, _, _ = base.sustained()
    answered = run.ledgers.answered if run.ledgers else 0
    ratio = rate / base_rate if rate and base_rate and (answered or run.finished) else None
    memory = run.memory() / base.memory() if base.memory() else None
    expect = "near linear in claims" if axis == "claims" else f"flat in {axis}"
    stopped = (f"the point at {large} {axis} was stopped at its time limit: "
               if run.timed_out else "")
    note = f"target: {expect} (at least {FLAT:g})"
    if ratio is None:
        note = stopped + ("no claim was answered" if run.timed_out else run.problem())
    elif run.timed_out:
        note += f"; {stopped}over the {answered} claims it answered"
    why = ""
    if ratio is not None and ratio < FLAT:
        per = run.messages_per_claim()
        per_base = base.messages_per_claim()
        why = (f"claims/s at {large} {axis} is {ratio:.2f} of what it is at {small}"
               + (f"; a claim costs {per:.1f} messages handled against {per_base:.1f}"
                  if per and per_base else "")
               + (f"; the run has {run.summary['nodes']} nodes against "
                  f"{base.summary['nodes']}" if run.summary and base.summary else "")
               + (f"; it spent {run.startup:.0f} s before its first claim against "
                  f"{base.startup:.0f} s" if run.startup and base.startup else "") + ".")
    return [
        Figure(SECTION, f"claims/s ratio, {axis} {large} / {small}", ratio, "x", FLAT,
               note=note, detail={"why": why}),
        Figure(SECTION, f"peak memory ratio, {axis} {large} / {small}", memory, "x",
               higher_is_better=False,
               note="reported, no target" + (f"; {stopped}its peak so far" if stopped else "")),
    ]


def main() -> None:
    import argparse
    from figures import show
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--limit", type=float, help="wall seconds a point may take")
    args = parser.parse_args()
    show(measure(Env(quick=args.quick, workdir=ROOT / "out" / "bench"), limit=args.limit))


if __name__ == "__main__":
    main()

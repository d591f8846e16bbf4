"""End to end: claims through hub, regions and hospitals, as ``clearsim run`` runs them.

    python benchmarks/e2e.py [--quick] [--kafka HOST:PORT] [--postgres URL] [--days N]

(a) On the in-process bus with SQLite: sustained claims/s flat out, and the settlement
round trip (2304 sent -> answer received, from the hospitals' ledgers) p50/p99. Target:
300 claims/s in one process; moonshot: 60 % of the floor in claims/s (the per-message
floor over the messages a claim costs).
(b) On a real Kafka broker, with SQLite and with PostgreSQL: sustained claims/s flat out,
in one process and with every node a process of its own (``--processes``), then the
settlement round trip p50/p99 with claims offered at 50 % and at 90 % of the one-process
maximum. Targets: 250 claims/s, p99 under 200 ms at 50 %.

Every run is a child process (its memory is its own) on ``scenarios/bench/e2e.toml``,
a 16-region slice of the national month, for as many simulated days as make the claims
last about 30 seconds at the speed last recorded (``--days`` fixes it).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(ROOT), str(ROOT / "benchmarks")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import shape  # noqa: E402
import subrun  # noqa: E402
from figures import Env, Figure  # noqa: E402

SCENARIO = ROOT / "scenarios" / "bench" / "e2e.toml"
PER_DAY = shape.E2E.claims_per_day
TARGET_INPROCESS = 300.0           # claims/s, one process
TARGET_KAFKA = 250.0               # claims/s
TARGET_P99_AT_HALF = 200.0         # ms
MOONSHOT_SHARE = 0.6               # of the floor in claims/s
SECTION_MEMORY = "end to end (in-process)"
SECTION_KAFKA = {"sqlite": "end to end (Kafka, SQLite)",
                 "postgresql": "end to end (Kafka, PostgreSQL)"}


def sized_days(rate: float | None, seconds: float, default: int, most: int = 90) -> int:
    """Simulated days whose claims last about ``seconds`` at ``rate`` claims/s."""
    if not rate:
        return default
    return max(1, min(most, math.ceil(rate * seconds / PER_DAY)))


def last_rate(previous: list | None, section: str) -> float | None:
    for f in previous or []:
        if f.section == section and f.name == "claims/s sustained" and f.value:
            return f.value
    return None


def measure(env: Env, floor: float | None = None, previous: list | None = None,
            days: int | None = None) -> list[Figure]:
    """``floor``: the per-message floor (msgs/s) measured in the same run, if any;
    ``previous``: the figures last recorded (to size the runs)."""
    seconds = 8 if env.quick else 30
    timeout = 300 if env.quick else 1200
    figures = in_process(env, floor, days or sized_days(
        last_rate(previous, SECTION_MEMORY), seconds, 1 if env.quick else 4), timeout)
    for database, url in (("sqlite", None), ("postgresql", env.postgres)):
        section = SECTION_KAFKA[database]
        missing = ("no Kafka broker" if not env.kafka else
                   "no PostgreSQL server" if database == "postgresql" and not url else "")
        if missing:
            figures += [Figure(section, name, None, unit, target, better, note=missing)
                        for name, unit, target, better in KAFKA_FIGURES]
            continue
        figures += on_kafka(env, section, url, floor, days or sized_days(
            last_rate(previous, section), seconds, 1 if env.quick else 3), seconds, timeout)
    return figures


def in_process(env: Env, floor: float | None, days: int, timeout: float) -> list[Figure]:
    run = subrun.run(SCENARIO, env.workdir / "e2e" / "in-process", "--workload", "--days",
                     str(days), "--timeout", str(timeout), timeout=timeout * 1.5,
                     label="e2e in-process")
    section = SECTION_MEMORY
    rate, window, how = run.sustained()
    per_claim = run.messages_per_claim()
    floor_claims = floor / per_claim if floor and per_claim else None
    detail = {"claims": run.claims, "days": days, "seconds": window, "measured by": how,
              "messages_per_claim": per_claim, "exit_code": run.exit_code,
              "command": "clearsim " + " ".join(run.command[3:])}
    ledgers = run.ledgers
    settle = ledgers.settle_ms if ledgers else []
    latency = (run.summary or {}).get("settlement_latency_ms") or {}
    figures = [
        Figure(section, "claims/s sustained", rate, "claims/s", TARGET_INPROCESS,
               floor=floor_claims, note=run.note(f"{run.claims} claims, {plural(days, 'day')}"),
               detail={**detail, "headline": True,
                       "why": _why_rate(rate, TARGET_INPROCESS, per_claim, floor)}),
        Figure(section, "claims/s sustained, moonshot (60 % of the floor)", rate,
               "claims/s", MOONSHOT_SHARE * floor_claims if floor_claims else None,
               floor=floor_claims,
               note="" if floor_claims else "no per-message floor measured in this run",
               detail={"why": _why_rate(rate, MOONSHOT_SHARE * floor_claims, per_claim,
                                        floor) if floor_claims else ""}),
        Figure(section, "messages handled per claim", per_claim, "msgs/claim",
               note="summary messages_in / claims (policies, reconciliation and clearing "
                    "included)"),
        Figure(section, "floor in claims/s", floor_claims, "claims/s",
               note=(f"per-message floor {floor:,.0f} msgs/s / {per_claim:.1f} messages a "
                     "claim" if floor_claims else "no per-message floor measured")),
        Figure(section, "settlement round trip p50", percent(settle, 50), "ms",
               higher_is_better=False, note="2304 sent -> answer received (hospitals' "
                                            "ledgers), flat out"),
        Figure(section, "settlement round trip p99", percent(settle, 99), "ms",
               higher_is_better=False, note="flat out: every claim of a day offered at once"),
        Figure(section, "claim round trip p99", latency.get("p99"), "ms",
               higher_is_better=False, note="arrival -> answer (2401, 2301, 2304), the run's "
                                            "own settlement_latency_ms"),
        Figure(section, "peak memory", run.memory(), "MiB", higher_is_better=False,
               note="the run's process"),
    ]
    return figures


KAFKA_FIGURES = (("claims/s sustained", "claims/s", TARGET_KAFKA, True),
                 ("claims/s sustained, node processes", "claims/s", TARGET_KAFKA, True),
                 ("settlement round trip p50 at 50 %", "ms", None, False),
                 ("settlement round trip p99 at 50 %", "ms", TARGET_P99_AT_HALF, False),
                 ("settlement round trip p50 at 90 %", "ms", None, False),
                 ("settlement round trip p99 at 90 %", "ms", None, False),
                 ("peak memory", "MiB", None, False))


def on_kafka(env: Env, section: str, postgres: str | None, floor: float | None, days: int,
             seconds: float, timeout: float) -> list[Figure]:
    tag = "postgresql" if postgres else "sqlite"
    work = env.workdir / "e2e" / f"kafka-{tag}"
    common = ("--kafka", env.kafka, "--timeout", str(timeout))
    flat = subrun.run(SCENARIO, work / "flat-out", "--workload", "--days", str(days),
                      *common, timeout=timeout * 1.5, postgres=postgres,
                      label=f"e2e kafka {tag} flat out")
    rate, window, how = flat.sustained()
    per_claim = flat.messages_per_claim()
    floor_claims = floor / per_claim if floor and per_claim else None
    figures = [Figure(section, "claims/s sustained", rate, "claims/s", TARGET_KAFKA,
                      floor=floor_claims,
                      note=flat.note(f"{flat.claims} claims, {plural(days, 'day')}"),
                      detail={"claims": flat.claims, "days": days, "seconds": window,
                              "measured by": how, "messages_per_claim": per_claim,
                              "headline": True, "exit_code": flat.exit_code,
                              "why": _why_rate(rate, TARGET_KAFKA, per_claim, floor)})]
    figures.append(node_processes(section, work, days, common, timeout, postgres, floor, tag))
    memory = [flat.memory()]
    for share in (0.5, 0.9):
        label = f"{round(share * 100)} %"
        if not rate:
            figures += [Figure(section, f"settlement round trip {p} at {label}", None, "ms",
                               TARGET_P99_AT_HALF if (p, share) == ("p99", 0.5) else None,
                               False, note="no sustained maximum to pace against")
                        for p in ("p50", "p99")]
            continue
        offered = rate * share
        paced, how_paced = paced_run(work / f"paced-{int(share * 100)}", offered, seconds,
                                     common, timeout, postgres, f"e2e kafka {tag} {label}")
        memory.append(paced.memory())
        settle = paced.ledgers.settle_ms if paced.ledgers else []
        achieved, _, _ = paced.sustained()
        note = paced.note(f"offered {offered:.1f} claims/s ({how_paced}), "
                          f"achieved {achieved or 0:.1f}; {len(settle)} settlements")
        p50, p99 = percent(settle, 50), percent(settle, 99)
        detail = {"offered": offered, "achieved": achieved, "paced by": how_paced,
                  "claims": paced.claims, "settlements": len(settle)}
        figures.append(Figure(section, f"settlement round trip p50 at {label}", p50, "ms",
                              higher_is_better=False, note=note, detail=detail))
        target = TARGET_P99_AT_HALF if share == 0.5 else None
        figures.append(Figure(section, f"settlement round trip p99 at {label}", p99, "ms",
                              target, higher_is_better=False, note=note,
                              detail={**detail, "headline": share == 0.5,
                                      "why": _why_latency(p50, p99, offered, rate, target)}))
    figures.append(Figure(section, "peak memory", max(memory), "MiB", higher_is_better=False,
                          note="the largest of the runs' processes"))
    return figures


def node_processes(section: str, work: Path, days: int, common: tuple, timeout: float,
                   postgres: str | None, floor: float | None, tag: str) -> Figure:
    """The flat-out run again with every node a process of its own (``clearsim run
    --processes``): the test bed's shape on a real cluster, where nodes share no
    interpreter."""
    name = "claims/s sustained, node processes"
    if not subrun.supports("--processes"):
        return Figure(section, name, None, "claims/s", TARGET_KAFKA,
                      note="this clearsim has no --processes")
    run = subrun.run(SCENARIO, work / "processes", "--workload", "--days", str(days),
                     "--processes", *common, timeout=timeout * 1.5, postgres=postgres,
                     label=f"e2e kafka {tag} node processes")
    rate, window, how = run.sustained()
    per_claim = run.messages_per_claim()
    nodes = (run.summary or {}).get("nodes")
    return Figure(section, name, rate, "claims/s", TARGET_KAFKA,
                  floor=floor / per_claim if floor and per_claim else None,
                  note=run.note(f"{run.claims} claims, {plural(days, 'day')}, "
                                f"{nodes or '?'} node processes"),
                  detail={"claims": run.claims, "days": days, "seconds": window,
                          "measured by": how, "messages_per_claim": per_claim,
                          "exit_code": run.exit_code,
                          "why": _why_rate(rate, TARGET_KAFKA, per_claim, floor)})


def paced_run(out: Path, offered: float, seconds: float, common: tuple, timeout: float,
              postgres: str | None, label: str):
    """Claims offered at ``offered`` per wall second for about ``seconds``: with the
    runner's ``--rate`` where it has one (evenly, open loop); else by the simulated clock
    (``--speedup``) on a copy of the workload with a day every two seconds and two
    seconds' claims a day, which arrive together (an upper bound of the even figure)."""
    if subrun.supports("--rate"):
        days = max(1, math.ceil(offered * seconds / PER_DAY))
        run = subrun.run(SCENARIO, out, "--workload", "--days", str(days), "--rate",
                         f"{offered:.3f}", *common, timeout=timeout * 1.5,
                         postgres=postgres, label=label)
        return run, "--rate, evenly"
    day = 2.0                                   # wall seconds a simulated day lasts
    days = max(2, round(seconds / day))
    scenario = out / "paced.toml"
    out.mkdir(parents=True, exist_ok=True)
    scenario.write_text(shape.build(shape.Shape(
        regions=shape.E2E.regions, hospitals=shape.E2E.hospitals,
        claims_per_day=offered * day, days=days,
        title=f"The end-to-end workload at {offered * day:.1f} claims a day",
        command="benchmarks/e2e.py (paced run)")))
    run = subrun.run(scenario, out, "--workload", "--days", str(days), "--speedup",
                     f"{86400 / day:g}", *common, timeout=timeout * 1.5, postgres=postgres,
                     label=label)
    return run, f"--speedup: a day's claims together, a day every {day:g} s"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def percent(values: list[float], p: float) -> float | None:
    return subrun.percentile(values, p)


def _why_rate(rate: float | None, target: float | None, per_claim: float | None,
              floor: float | None) -> str:
    if not rate or not target or not per_claim:
        return ""
    text = (f"A claim costs {per_claim:.1f} messages handled, so {target:,.0f} claims/s "
            f"means {target * per_claim:,.0f} messages/s; this run handled "
            f"{rate * per_claim:,.0f} messages/s")
    if floor:
        text += (f", {rate * per_claim / floor:.1%} of the per-message floor measured in the "
                 f"same run ({floor:,.0f} msgs/s: encode + decode + a batched transaction)")
    return text + "."


def _why_latency(p50, p99, offered, maximum, target) -> str:
    if p50 is None or p99 is None or not target:
        return ""
    return (f"With {offered:.1f} claims/s offered (half the sustained {maximum:.1f}), the "
            f"round trip crosses six messages handled in turn (hospitals -> treating "
            f"region -> hub -> insuring region -> hub -> treating region -> hospitals): "
            f"p50 {p50:,.0f} ms, about {p50 / 6:,.0f} ms a hop, and p99 {p99:,.0f} ms, "
            f"{p99 / p50:.1f} times the median.")


def main() -> None:
    import argparse
    from figures import show
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--kafka", help="bootstrap of a running broker")
    parser.add_argument("--postgres", help="a PostgreSQL server URL")
    parser.add_argument("--days", type=int)
    parser.add_argument("--floor", type=float, help="the per-message floor, msgs/s")
    args = parser.parse_args()
    env = Env(kafka=args.kafka, postgres=args.postgres, quick=args.quick,
              workdir=ROOT / "out" / "bench")
    show(measure(env, floor=args.floor, days=args.days))


if __name__ == "__main__":
    main()

"""Claims settled per second by the pure engine, on one core.

    .venv/bin/python benchmarks/settle_engine.py [--claims 100000] [--seed 7]

Generates claims over the demo scenario's catalogs and policies (fixed seed), then times
``settle`` alone (tier choice, classing, rounding, cap), the way a treating region calls it.
Target: at least 50,000 claims per second.
"""

from __future__ import annotations

import argparse
import platform
import random
import time
from pathlib import Path

from clearsim.domain.policy import FilingType
from clearsim.domain.settlement import ChargeItem, choose_tier, settle
from clearsim.sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def generate(scenario, n: int, seed: int):
    rnd = random.Random(seed)
    regions = [r for _, r in sorted(scenario.regions.items()) if r.policy is not None]
    hospitals = sorted(scenario.hospitals.values(), key=lambda h: h.id)
    filings = [None, *FilingType]
    work = []
    for _ in range(n):
        insuring = rnd.choice(regions)
        hospital = rnd.choice(hospitals)
        treating = scenario.regions[hospital.region]
        codes = sorted(treating.catalog.items)
        items = [ChargeItem(rnd.choice(codes), rnd.randint(100, 2_000_000))
                 for _ in range(rnd.randint(3, 12))]
        insurance = rnd.choice(list(insuring.policy.plans))
        work.append((insuring, treating, hospital, rnd.choice(filings), insurance, items,
                     rnd.randint(0, 10_000_000)))
    return work


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--claims", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    scenario = load_scenario(ROOT / "scenarios" / "demo.toml")
    work = generate(scenario, args.claims, args.seed)
    started = time.perf_counter()
    fund = 0
    for insuring, treating, hospital, filing, insurance, items, cap_used in work:
        choice = choose_tier(insuring_region=insuring.code, treating_region=treating.code,
                             hospital_level=hospital.level, filing=filing)
        catalog = insuring.catalog if choice.mode == "manual" else treating.catalog
        fund += settle(items=items, catalog=catalog, policy=insuring.policy,
                       insurance=insurance, choice=choice, cap_used=cap_used).fund_pay
    seconds = time.perf_counter() - started
    rate = args.claims / seconds
    print(f"settle engine: {args.claims} claims in {seconds:.3f} s = {rate:,.0f} claims/s "
          f"on one core (target 50,000: {rate / 50_000:.2f}x); "
          f"python {platform.python_version()}, checksum fund pay {fund} fen")


if __name__ == "__main__":
    main()

"""The workload generator: a scenario's ``[workload]`` turned into claims, reproducibly.

Keys (amounts and shares are decimal strings, as everywhere in a scenario)::

    [workload]
    seed = 7                                   # default: sim.seed
    length_of_stay = { min = 3, max = 14 }     # days; one to three charged items per day

    [workload.population]                      # the insured of each region (default:
    "360400" = { persons = 20000, insurance = { resident = "0.7", employee = "0.3" } }
                                               #  1000 persons, half each insurance type)

    [[workload.flow]]                          # patients of one region treated in another
    from = "360400"                            # insuring region
    to = "110000"                              # treating region
    admissions_per_day = "2.5"                 # mean; arrivals are Poisson
    filing = { referral = "0.6", temporary = "0.25", none = "0.15" }   # shares, sum 1

    [[workload.item_mix]]                      # what a hospital of a level charges
    level = 3
    items = [ { code = "D100", weight = "5", min = "20.00", max = "800.00" }, ... ]

A flow whose ``from`` equals its ``to`` is in-region care. Hospitals of the treating region
are drawn uniformly among those with an item mix for their level. The same scenario and
seed always give the same claims, in the claims-file format of SCENARIO.md.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from clearsim.domain.policy import FilingType, InsuranceType
from clearsim.money import Ratio, format_fen

FILING_KEYS = {f.value for f in FilingType} | {"none"}
INSURANCE_KEYS = {i.value for i in InsuranceType}


@dataclass(frozen=True)
class Flow:
    insuring: str
    treating: str
    rate: Ratio                                     # admissions per day (mean)
    filing: tuple[tuple[str, Ratio], ...]


@dataclass(frozen=True)
class Population:
    persons: int
    insurance: tuple[tuple[str, Ratio], ...]


HALF = Ratio(1, 2)
DEFAULT_POPULATION = Population(1000, (("employee", HALF), ("resident", HALF)))


@dataclass(frozen=True)
class MixItem:
    code: str
    weight: Ratio
    low: int                                        # fen
    high: int


@dataclass(frozen=True)
class Workload:
    seed: int | None
    population: dict[str, Population]
    stay: tuple[int, int]
    flows: tuple[Flow, ...]
    mixes: dict[int, tuple[MixItem, ...]]


def parse_workload(r, raw, regions: set[str]) -> Workload:
    """``r`` is the scenario reader (it names file and key path in every error)."""
    r.table(raw, "workload", {"seed", "population", "length_of_stay", "flow", "item_mix"},
            {"flow", "item_mix"})
    seed = r.integer(raw["seed"], "workload.seed") if "seed" in raw else None
    population = {}
    for code, entry in r.table(raw.get("population", {}), "workload.population",
                               set(regions)).items():
        kp = f"workload.population.{code}"
        r.table(entry, kp, {"persons", "insurance"}, {"persons", "insurance"})
        population[code] = Population(r.integer(entry["persons"], f"{kp}.persons", low=1),
                                      _shares(r, entry["insurance"], f"{kp}.insurance",
                                              INSURANCE_KEYS))
    stay = r.table(raw.get("length_of_stay", {"min": 3, "max": 14}), "workload.length_of_stay",
                   {"min", "max"}, {"min", "max"})
    low = r.integer(stay["min"], "workload.length_of_stay.min", low=1)
    high = r.integer(stay["max"], "workload.length_of_stay.max", low=low)
    flows = []
    for i, flow in enumerate(_array(r, raw["flow"], "workload.flow")):
        kp = f"workload.flow[{i}]"
        r.table(flow, kp, {"from", "to", "admissions_per_day", "filing"},
                {"from", "to", "admissions_per_day", "filing"})
        for end in ("from", "to"):
            if r.string(flow[end], f"{kp}.{end}") not in regions:
                raise r.fail(f"{kp}.{end}", f"unknown region {flow[end]!r}")
        flows.append(Flow(flow["from"], flow["to"],
                          r.ratio_any(flow["admissions_per_day"], f"{kp}.admissions_per_day"),
                          _shares(r, flow["filing"], f"{kp}.filing", FILING_KEYS)))
    mixes: dict[int, tuple[MixItem, ...]] = {}
    for i, mix in enumerate(_array(r, raw["item_mix"], "workload.item_mix")):
        kp = f"workload.item_mix[{i}]"
        r.table(mix, kp, {"level", "items"}, {"level", "items"})
        level = r.integer(mix["level"], f"{kp}.level")
        if level not in (1, 2, 3) or level in mixes:
            raise r.fail(f"{kp}.level", f"must be 1, 2 or 3 and appear once, not {level}")
        items = []
        for j, item in enumerate(_array(r, mix["items"], f"{kp}.items")):
            ik = f"{kp}.items[{j}]"
            r.table(item, ik, {"code", "weight", "min", "max"}, {"code", "weight", "min", "max"})
            lo, hi = r.amount(item["min"], f"{ik}.min"), r.amount(item["max"], f"{ik}.max")
            if hi < lo:
                raise r.fail(f"{ik}.max", "is below min")
            items.append(MixItem(r.string(item["code"], f"{ik}.code"),
                                 r.ratio_any(item["weight"], f"{ik}.weight"), lo, hi))
        mixes[level] = tuple(items)
    return Workload(seed, population, (low, high), tuple(flows), mixes)


def _array(r, value, keypath: str) -> list:
    if not isinstance(value, list) or not value:
        raise r.fail(keypath, "must be a non-empty array of tables")
    return value


def _shares(r, raw, keypath: str, allowed: set[str]) -> tuple[tuple[str, Ratio], ...]:
    r.table(raw, keypath, allowed)
    shares = tuple((key, r.ratio(value, f"{keypath}.{key}")) for key, value in sorted(raw.items()))
    total = sum(share.as_decimal() for _, share in shares)
    if total != 1:
        raise r.fail(keypath, f"shares must add up to 1, not {total}")
    return shares


def _pick(rnd: random.Random, shares) -> str:
    point = rnd.random()
    for key, share in shares:
        point -= share.num / share.den
        if point < 0:
            return key
    return shares[-1][0]


def _poisson(rnd: random.Random, rate: float) -> int:
    """Arrivals in a day at a mean ``rate``: Knuth's method, a rounded normal above 30."""
    if rate <= 0:
        return 0
    if rate > 30:
        return max(0, round(rnd.gauss(rate, math.sqrt(rate))))
    limit, k, p = math.exp(-rate), 0, 1.0
    while True:
        p *= rnd.random()
        if p <= limit:
            return k
        k += 1


def generate(workload: Workload, scenario, start: date, days: int,
             default_seed: int = 0) -> list[dict]:
    """Claims for ``days`` simulated days from ``start``, in claims-file format."""
    return list(stream(workload, scenario, start, days, default_seed))


def stream(workload: Workload, scenario, start: date, days: int,
           default_seed: int = 0) -> Iterator[dict]:
    """The claims of ``generate``, one at a time: a national month's 227,000 claims as
    dicts would hold over a GiB at once, so a run parses each as it comes."""
    rnd = random.Random(workload.seed if workload.seed is not None else default_seed)
    hospitals: dict[str, list] = {}
    for hospital in sorted(scenario.hospitals.values(), key=lambda h: h.id):
        if hospital.level in workload.mixes:
            hospitals.setdefault(hospital.region, []).append(hospital)
    count = 0
    for offset in range(days):
        day = start + timedelta(days=offset)
        for flow in workload.flows:
            candidates = hospitals.get(flow.treating, [])
            if not candidates:
                continue
            for _ in range(_poisson(rnd, flow.rate.num / flow.rate.den)):
                count += 1
                yield _claim(rnd, workload, flow, rnd.choice(candidates), day,
                             f"W{day:%Y%m%d}-{count:06d}")


def _claim(rnd: random.Random, workload: Workload, flow: Flow, hospital, day: date,
           claim_id: str) -> dict:
    population = workload.population.get(flow.insuring, DEFAULT_POPULATION)
    person = f"P{flow.insuring}-{rnd.randrange(population.persons):06d}"
    # A person's insurance type is the person's own: the same in every claim.
    insurance = _pick(random.Random(f"{workload.seed}:{person}"), population.insurance)
    filing = _pick(rnd, flow.filing)
    mix = workload.mixes[hospital.level]
    weights = [m.weight.num / m.weight.den for m in mix]
    stay = rnd.randint(*workload.stay)
    items = []
    for item in rnd.choices(mix, weights, k=sum(rnd.randint(1, 3) for _ in range(stay))):
        items.append({"code": item.code, "amount": format_fen(rnd.randint(item.low, item.high))})
    return {"claim_id": claim_id, "date": day.isoformat(), "hospital": hospital.id,
            "person": {"id": person, "insuring_region": flow.insuring,
                       "insurance": insurance,
                       "filing": None if filing == "none" else filing},
            "items": items}

"""Scenarios shaped on the country (DOMAIN.md §4 and §7), generated from a fixed seed.

One generator serves the national month (390 regions, 27,608 hospitals, about 227,000
cross-region inpatient claims in 30 days), the end-to-end workload (a slice of it) and the
scaling points (more regions, more hospitals, more claims). ``build(Shape(...))`` returns
the scenario's TOML text; the same shape and seed always give the same text.

What is taken from the sources and what is illustrative:
- 390 pooling regions with 6-digit area codes shaped like the real ones: the province's
  two digits, then the prefecture (``xx0100`` is the provincial capital); a provincial-level
  pool per province (``xx9900``), the Xinjiang Production and Construction Corps (``66xx00``)
  and a few county-level cities administered by their province. Names are given for the
  cities a reader knows; the others are named by province and number. Populations are the
  provinces' 2019 figures (millions, rounded), shared among their regions.
- Policies drawn around seed 001's Jiujiang figures (DOMAIN.md §4): a province-wide factor
  on the deductibles (cross-region referred resident deductibles average about 800 yuan,
  the national 804.31; Gansu's and Hebei's are the highest, 1,460 and 1,360), ratios
  moved a few points either way, annual caps between the seeds' figures.
- One national catalogue (the calibrated Beijing scenario's ten items), with the
  differences between provinces that the demo shows: a class-B self-pay share of each
  province's own, a stent that is class C in some provinces, a drug that is class B in
  others. Every region of a province has its province's catalogue.
- Hospitals (levels 1-3) spread over the regions by population, more and bigger ones in
  the large treating cities; cross-region inpatients are treated in level-2 and level-3
  hospitals (the workload's item mix has no level 1).
- Inter-provincial flows only, concentrated on the big treating cities: Beijing receives
  23.6 % of the country's cross-region inpatients (641,375 of 2.72 million, DOMAIN.md §7);
  the other cities' shares are illustrative. Patients prefer cities of their own part of
  the country; each region sends patients to its eight likeliest destinations.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date

NATIONAL_YEAR_CLAIMS = 2_720_000          # inpatient cross-region settlements, 2019 (§7)
NATIONAL_HOSPITALS = 27_608               # institutions open for it, 2019 (§7)
NATIONAL_REGIONS = 390                    # pooling regions, about (§7)
NATIONAL_MONTH_CLAIMS = 227_000           # a twelfth of the year, rounded

# Province: two-digit code, name, prefecture-level pooling regions, population 2019
# (millions, rounded), part of the country, named regions by prefecture number.
PROVINCES = (
    ("11", "Beijing", 1, 21.5, "north", {1: "Beijing"}),
    ("12", "Tianjin", 1, 15.6, "north", {1: "Tianjin"}),
    ("13", "Hebei", 11, 75.9, "north", {1: "Shijiazhuang", 2: "Tangshan", 6: "Baoding"}),
    ("14", "Shanxi", 11, 37.3, "north", {1: "Taiyuan"}),
    ("15", "Inner Mongolia", 12, 25.4, "north", {1: "Hohhot", 2: "Baotou"}),
    ("21", "Liaoning", 14, 43.5, "northeast", {1: "Shenyang", 2: "Dalian"}),
    ("22", "Jilin", 9, 26.9, "northeast", {1: "Changchun"}),
    ("23", "Heilongjiang", 13, 37.5, "northeast", {1: "Harbin"}),
    ("31", "Shanghai", 1, 24.3, "east", {1: "Shanghai"}),
    ("32", "Jiangsu", 13, 80.7, "east", {1: "Nanjing", 5: "Suzhou"}),
    ("33", "Zhejiang", 11, 58.5, "east", {1: "Hangzhou", 2: "Ningbo"}),
    ("34", "Anhui", 16, 63.7, "east", {1: "Hefei"}),
    ("35", "Fujian", 9, 39.7, "east", {1: "Fuzhou", 2: "Xiamen"}),
    ("36", "Jiangxi", 11, 46.7, "east", {1: "Nanchang", 4: "Jiujiang"}),
    ("37", "Shandong", 16, 100.7, "east", {1: "Jinan", 2: "Qingdao"}),
    ("41", "Henan", 17, 96.4, "central", {1: "Zhengzhou"}),
    ("42", "Hubei", 13, 59.3, "central", {1: "Wuhan"}),
    ("43", "Hunan", 14, 69.2, "central", {1: "Changsha"}),
    ("44", "Guangdong", 21, 115.2, "south", {1: "Guangzhou", 3: "Shenzhen"}),
    ("45", "Guangxi", 14, 49.6, "south", {1: "Nanning"}),
    ("46", "Hainan", 4, 9.4, "south", {1: "Haikou", 2: "Sanya"}),
    ("50", "Chongqing", 1, 31.2, "southwest", {1: "Chongqing"}),
    ("51", "Sichuan", 21, 83.8, "southwest", {1: "Chengdu"}),
    ("52", "Guizhou", 9, 36.2, "southwest", {1: "Guiyang"}),
    ("53", "Yunnan", 16, 48.6, "southwest", {1: "Kunming"}),
    ("54", "Tibet", 7, 3.5, "southwest", {1: "Lhasa"}),
    ("61", "Shaanxi", 10, 38.8, "northwest", {1: "Xi'an"}),
    ("62", "Gansu", 14, 26.5, "northwest", {1: "Lanzhou"}),
    ("63", "Qinghai", 8, 6.1, "northwest", {1: "Xining"}),
    ("64", "Ningxia", 5, 6.9, "northwest", {1: "Yinchuan"}),
    ("65", "Xinjiang", 14, 25.2, "northwest", {1: "Urumqi"}),
)
MUNICIPALITIES = {"11", "12", "31", "50"}      # one pooling region, code xx0000
# County-level cities administered by their province: their own pooling regions.
PROVINCE_CITIES = (("419001", "Jiyuan", 0.7), ("429004", "Xiantao", 1.1),
                   ("429005", "Qianjiang", 1.0), ("429006", "Tianmen", 1.3),
                   ("429021", "Shennongjia", 0.1), ("469001", "Wuzhishan", 0.1),
                   ("469002", "Qionghai", 0.5), ("469005", "Wenchang", 0.6),
                   ("469006", "Wanning", 0.6), ("469007", "Dongfang", 0.4),
                   ("469021", "Ding'an", 0.3))
CORPS_DIVISIONS = 14                           # Xinjiang Production and Construction Corps

# Patients sent out per inhabitant, relative (illustrative: provinces next to Beijing and
# Shanghai, and the north-east, send more; the big cities send fewer).
OUTFLOW = {"11": 0.4, "31": 0.4, "44": 0.5, "33": 0.7, "32": 0.8, "12": 0.8, "13": 1.8,
           "34": 1.6, "36": 1.4, "41": 1.2, "23": 1.5, "15": 1.5, "22": 1.3, "14": 1.3,
           "62": 1.2, "65": 1.3, "66": 1.3}
# Share of the country's cross-region inpatients each treating city receives. Beijing's is
# DOMAIN.md §7's (641,375 of 2.72 million); the others are illustrative. The rest of the
# flows go to the other provincial capitals, by population.
TREATING = {"110000": 0.236, "310000": 0.200, "440100": 0.050, "330100": 0.045,
            "320100": 0.040, "120000": 0.030, "510100": 0.025, "420100": 0.025,
            "430100": 0.020, "610100": 0.020, "500000": 0.020, "460100": 0.020,
            "410100": 0.015, "460200": 0.015, "440300": 0.015, "320500": 0.015,
            "530100": 0.012, "370100": 0.012, "210100": 0.010}
RETIREMENT = {"460100", "460200", "530100"}    # winter homes: more relocated patients
SAME_PART = 4.0                                # preference for the same part of the country
DESTINATIONS_PER_REGION = 8

FILING = {"referral": "0.62", "relocated": "0.12", "long_term_resident": "0.10",
          "emergency": "0.04", "temporary": "0.08", "none": "0.04"}
FILING_RETIRED = {"referral": "0.30", "relocated": "0.30", "long_term_resident": "0.25",
                  "emergency": "0.05", "temporary": "0.06", "none": "0.04"}

# The national catalogue: the calibrated Beijing scenario's items (README, "Calibrated").
CATALOGUE = (("D-ANTIBIOTIC", "antibiotics"), ("D-ONCOLOGY", "targeted oncology drugs"),
             ("T-LAB", "laboratory tests"), ("T-CT", "CT scan"), ("T-MRI", "MRI scan"),
             ("P-SURGERY", "surgical procedures"), ("M-STENT", "coronary stent"),
             ("M-IMPORTED", "imported consumables"), ("S-WARD", "special-needs ward"),
             ("S-NURSING", "private nursing"))
# What a hospital of a level charges: code, weight, min, max (yuan). Level 3 is the
# calibrated Beijing hospital's mix; level 2 charges less for the same things.
MIX_3 = (("D-ANTIBIOTIC", "6", 40, 900), ("D-ONCOLOGY", "1.2", 800, 6000),
         ("T-LAB", "6", 30, 400), ("T-CT", "1.5", 300, 1200), ("T-MRI", "1", 600, 1800),
         ("P-SURGERY", "0.8", 3000, 20000), ("M-STENT", "0.25", 6000, 25000),
         ("M-IMPORTED", "0.35", 3000, 15000), ("S-WARD", "2.2", 100, 600),
         ("S-NURSING", "2.5", 60, 300))
MIX_2 = (("D-ANTIBIOTIC", "7", 30, 700), ("D-ONCOLOGY", "0.8", 600, 5000),
         ("T-LAB", "6", 20, 350), ("T-CT", "1.5", 250, 1000), ("T-MRI", "0.8", 500, 1500),
         ("P-SURGERY", "0.7", 2500, 15000), ("M-STENT", "0.15", 6000, 22000),
         ("M-IMPORTED", "0.25", 2500, 12000), ("S-WARD", "1.5", 80, 500),
         ("S-NURSING", "2.5", 50, 250))


@dataclass(frozen=True)
class Shape:
    """What to generate. ``regions``: the first N regions (the treating cities first, then
    the others by population); ``claims_per_day``: the flows' admissions per day, all
    together; ``title``: the scenario's first comment line."""
    regions: int = NATIONAL_REGIONS
    hospitals: int = NATIONAL_HOSPITALS
    claims_per_day: float = NATIONAL_MONTH_CLAIMS / 30
    days: int = 30
    start: date = date(2019, 4, 1)
    seed: int = 2019
    title: str = "A national month"
    command: str = "python benchmarks/shape.py --national"
    notes: tuple[str, ...] = field(default=())


@dataclass
class Region:
    code: str
    name: str
    province: str
    part: str
    people: float                               # millions
    hospitals: int = 0


def all_regions() -> list[Region]:
    """The 390 regions, the treating cities first (by their share), then by population."""
    regions = []
    for code2, name, count, people, part, names in PROVINCES:
        if code2 in MUNICIPALITIES:
            regions.append(Region(f"{code2}0000", name, code2, part, people))
            continue
        shares = [2.0] + [1.0] * (count - 1)     # the capital is twice a prefecture
        pools = people * 0.97
        for number in range(1, count + 1):
            regions.append(Region(f"{code2}{number:02d}00",
                                  names.get(number, f"{name} {number:02d}"), code2, part,
                                  pools * shares[number - 1] / sum(shares)))
        regions.append(Region(f"{code2}9900", f"{name} provincial", code2, part,
                              people * 0.03))
    for code, name, people in PROVINCE_CITIES:
        regions.append(Region(code, name, code[:2], _part(code[:2]), people))
    regions.append(Region("660000", "Xinjiang Corps", "66", "northwest", 0.4))
    for number in range(1, CORPS_DIVISIONS + 1):
        regions.append(Region(f"66{number:02d}00", f"Xinjiang Corps {number:02d}", "66",
                              "northwest", 0.2))
    assert len(regions) == NATIONAL_REGIONS and len({r.code for r in regions}) == len(regions)
    order = {code: i for i, code in enumerate(TREATING)}
    capitals = sorted((r for r in regions if r.code not in order and _capital(r)),
                      key=lambda r: (-r.people, r.code))
    rest = sorted((r for r in regions if r.code not in order and not _capital(r)),
                  key=lambda r: (-r.people, r.code))
    return sorted((r for r in regions if r.code in order),
                  key=lambda r: order[r.code]) + capitals + rest


def _part(code2: str) -> str:
    return next(p[4] for p in PROVINCES if p[0] == code2)


def _capital(region: Region) -> bool:
    return region.code.endswith("0100") or region.province in MUNICIPALITIES


def treating_shares(regions: list[Region]) -> dict[str, float]:
    """Each treating city's share of the inflow: the named ones', the rest shared among the
    other provincial capitals by population; renormalised over the regions present."""
    present = {r.code: r for r in regions}
    shares = {code: share for code, share in TREATING.items() if code in present}
    others = [r for r in regions if _capital(r) and r.code not in TREATING]
    rest = max(0.0, 1 - sum(TREATING.values()))
    people = sum(r.people for r in others)
    for r in others:
        shares[r.code] = rest * r.people / people
    total = sum(shares.values())
    return {code: share / total for code, share in shares.items()}


def flows(regions: list[Region], per_day: float) -> list[tuple[str, str, float]]:
    """(from, to, admissions per day): inter-provincial flows toward the treating cities.
    Iterative proportional fitting gives each region its outflow and each treating city its
    share; each region then keeps its eight likeliest destinations (and each city its five
    largest senders), and the fitting is done again on what was kept."""
    targets = treating_shares(regions)
    by_code = {r.code: r for r in regions}
    sending = {r.code: r.people * OUTFLOW.get(r.province, 1.0) for r in regions}
    total = sum(sending.values())
    sending = {code: value / total for code, value in sending.items()}
    matrix = {o: {d: (SAME_PART if by_code[o].part == by_code[d].part else 1.0)
                  for d in targets if by_code[d].province != by_code[o].province}
              for o in sending}
    matrix = {o: row for o, row in matrix.items() if row}
    _fit(matrix, sending, targets)
    kept = {o: set(sorted(row, key=lambda d: (-row[d], d))[:DESTINATIONS_PER_REGION])
            for o, row in matrix.items()}
    for d in targets:
        senders = sorted((o for o in matrix if d in matrix[o]),
                         key=lambda o: (-matrix[o][d], o))
        for o in senders[:5]:
            kept[o].add(d)
    matrix = {o: {d: row[d] for d in kept[o]} for o, row in matrix.items()}
    _fit(matrix, sending, targets)
    out = [(o, d, matrix[o][d]) for o in sorted(matrix) for d in sorted(matrix[o])]
    total = sum(rate for _, _, rate in out)
    return [(o, d, per_day * rate / total) for o, d, rate in out]


def _fit(matrix: dict[str, dict[str, float]], rows: dict[str, float],
         columns: dict[str, float], rounds: int = 300) -> None:
    """Scale ``matrix`` in place until its row sums are ``rows`` and its column sums
    ``columns`` (as far as its zeros allow)."""
    for _ in range(rounds):
        sums: dict[str, float] = {}
        for row in matrix.values():
            for d, v in row.items():
                sums[d] = sums.get(d, 0.0) + v
        for row in matrix.values():
            for d in row:
                row[d] *= columns[d] / sums[d]
        for o, row in matrix.items():
            scale = rows[o] / sum(row.values())
            for d in row:
                row[d] *= scale


def spread_hospitals(regions: list[Region], count: int) -> None:
    """``count`` hospitals over the regions by population, three times as many per
    inhabitant in the treating cities; every region one at least while there are enough
    (the largest remainders take the rest)."""
    treating = set(treating_shares(regions))
    weights = [r.people * (3.0 if r.code in treating else 1.0) for r in regions]
    floor_each = 1 if count >= len(regions) else 0
    spare = count - floor_each * len(regions)
    exact = [spare * w / sum(weights) for w in weights]
    counts = [floor_each + int(x) for x in exact]
    order = sorted(range(len(regions)), key=lambda i: (-(exact[i] - int(exact[i])), i))
    for i in order[:count - sum(counts)]:
        counts[i] += 1
    for region, n in zip(regions, counts):
        region.hospitals = n


def levels(region: Region, treating: set[str]) -> list[int]:
    """The levels of a region's hospitals: two fifths level 3 in a treating city, a tenth
    elsewhere (one at least where there are hospitals), a third level 2, the rest level 1."""
    n = region.hospitals
    if not n:
        return []
    third = max(1, round(n * (0.40 if region.code in treating else 0.10)))
    second = min(n - third, round(n * 0.33))
    return [3] * third + [2] * second + [1] * (n - third - second)


def _yuan(value: float, step: int = 10) -> str:
    return f"{int(round(value / step) * step)}.00"


def _ratio(value: float) -> str:
    return f"{min(0.97, max(0.30, value)):.2f}"


def policy_lines(rnd: random.Random, factor: float) -> list[str]:
    """A region's policy: seed 001's figures moved by the province's deductible factor
    and a few points of its own."""
    f = factor * rnd.uniform(0.92, 1.08)
    shift = rnd.choice((-0.05, -0.03, 0.0, 0.0, 0.02, 0.04))
    referred = 0.50 + rnd.choice((0.0, 0.03, 0.05, 0.08, 0.10, 0.13, 0.15))
    lines = ["", "[region.policy]", f"version = {rnd.randint(1, 3)}", "",
             "[region.policy.resident]",
             f'annual_cap = "{rnd.choice(range(150, 301, 10))}000.00"']
    resident = (("in_region.level1", 100, 0.90 + shift), ("in_region.level2", 400, 0.80 + shift),
                ("in_region.level3", 600, 0.60 + shift),
                ("cross_region.referred", 600, referred),
                ("cross_region.not_referred", 800, referred - 0.10))
    lines += [f'{tier} = {{ deductible = "{_yuan(d * f)}", ratio = "{_ratio(r)}" }}'
              for tier, d, r in resident]
    employee_referred = 0.75 + rnd.choice((-0.03, 0.0, 0.0, 0.03, 0.05))
    lines += ["", "[region.policy.employee]",
              f'annual_cap = "{rnd.choice(range(250, 601, 50))}000.00"']
    employee = (("in_region.level1", 300, 0.95 + shift / 2),
                ("in_region.level2", 500, 0.90 + shift / 2),
                ("in_region.level3", 800, 0.85 + shift / 2),
                ("cross_region.referred", 800, employee_referred),
                ("cross_region.not_referred", 1000, employee_referred - 0.15))
    lines += [f'{tier} = {{ deductible = "{_yuan(d * f)}", ratio = "{_ratio(r)}" }}'
              for tier, d, r in employee]
    return lines


def catalogue(rnd: random.Random) -> list[tuple[str, str, str, str | None]]:
    """A province's catalogue: the national items, classes and shares of its own."""
    def b(*shares: str) -> tuple[str, str | None]:
        return "B", rnd.choice(shares)
    classes = {
        "D-ANTIBIOTIC": ("A", None) if rnd.random() < 0.85 else b("0.05", "0.10"),
        "D-ONCOLOGY": b("0.10", "0.15", "0.20", "0.30"),
        "T-LAB": ("A", None),
        "T-CT": b("0.05", "0.10", "0.15", "0.20"),
        "T-MRI": b("0.10", "0.15", "0.20"),
        "P-SURGERY": ("A", None),
        "M-STENT": ("C", None) if rnd.random() < 0.15 else b("0.20", "0.30", "0.40"),
        "M-IMPORTED": ("C", None),
        "S-WARD": ("C", None),
        "S-NURSING": ("C", None),
    }
    return [(code, name, *classes[code]) for code, name in CATALOGUE]


# Provincial deductible factors: Gansu's and Hebei's cross-region deductibles are the
# highest (1,460 and 1,360 yuan for a referred resident, against 600 at seed 001).
DEDUCTIBLE_FACTOR = {"62": 2.43, "13": 2.27}


def build(shape: Shape) -> str:
    """The scenario's TOML text."""
    rnd = random.Random(shape.seed)
    regions = all_regions()[:shape.regions]
    spread_hospitals(regions, shape.hospitals)
    treating = set(treating_shares(regions))
    factors = {p[0]: DEDUCTIBLE_FACTOR.get(p[0], rnd.uniform(0.85, 1.85)) for p in PROVINCES}
    factors["66"] = factors["65"]
    catalogues = {p[0]: catalogue(rnd) for p in PROVINCES}
    catalogues["66"] = catalogues["65"]
    flow_list = [(o, d, rate) for o, d, rate in flows(regions, shape.claims_per_day)
                 if round(rate, 3) > 0]
    outbound: dict[str, float] = {}
    inbound: dict[str, float] = {}
    for o, d, rate in flow_list:
        outbound[o] = outbound.get(o, 0.0) + rate
        inbound[d] = inbound.get(d, 0.0) + rate
    names = {r.code: r.name for r in regions}
    declared = sum(round(rate, 3) for _, _, rate in flow_list)
    top = sorted(inbound.items(), key=lambda kv: -kv[1])[:5]
    lines = [
        f"# {shape.title}.",
        f"# {len(regions)} pooling regions, {sum(r.hospitals for r in regions):,} hospitals, "
        f"about {declared * shape.days:,.0f} cross-region inpatient claims",
        f"# over {shape.days} simulated days from {shape.start} ({len(flow_list):,} flows, "
        f"{declared:,.1f} admissions a day).",
        "# Generated (fixed seed) by benchmarks/shape.py, which says what is taken from",
        "# DOMAIN.md and what is illustrative; do not edit by hand. Regenerate with:",
        f"#   {shape.command}",
        "# Largest treating regions, by share of the admissions:",
        "#   " + ", ".join(f"{names[c]} {v / declared:.1%}" for c, v in top) + ".",
        *[f"# {note}" for note in shape.notes],
        "",
        "[sim]",
        f"seed = {shape.seed}",
        f'start = "{shape.start}"',
        f"days = {shape.days}",
        "# Qingming (5 April) and Labour Day (1-4 May, with Sunday 28 April and Sunday 5 May "
        "worked)",
        'holidays = ["2019-04-05", "2019-05-01", "2019-05-02", "2019-05-03", "2019-06-07"]',
        'workdays = ["2019-04-28", "2019-05-05"]',
        "",
        "[reconciliation]",
        "after_working_days = 2",
        "",
        "[clearing]",
        "notice_working_days = 5",
        "payment_working_days = 3",
        "disbursement_working_days = 4",
        "hospital_payment_working_days = 1",
    ]
    for region in regions:
        lines += ["", "[[region]]", f'code = "{region.code}"', f'name = "{region.name}"']
        lines += policy_lines(rnd, factors[region.province])
        lines += ["", "[region.catalog]", "items = ["]
        for code, name, cls, share in catalogues[region.province]:
            extra = f', b_selfpay_share = "{share}"' if share else ""
            lines.append(f'  {{ code = "{code}", name = "{name}", class = "{cls}"{extra} }},')
        lines.append("]")
    lines += ["", "[workload]", f"seed = {shape.seed}",
              "length_of_stay = { min = 4, max = 16 }      # days; 1-3 items a day: ~20 items",
              "flow = ["]
    for o, d, rate in flow_list:
        filing = FILING_RETIRED if d in RETIREMENT else FILING
        shares = ", ".join(f'{k} = "{v}"' for k, v in filing.items())
        lines.append(f'  {{ from = "{o}", to = "{d}", admissions_per_day = "{rate:.3f}", '
                     f"filing = {{ {shares} }} }},")
    lines += ["]", "item_mix = ["]
    for level, mix in ((2, MIX_2), (3, MIX_3)):
        lines.append(f"  {{ level = {level}, items = [")
        for code, weight, low, high in mix:
            lines.append(f'    {{ code = "{code}", weight = "{weight}", min = "{low}.00", '
                         f'max = "{high}.00" }},')
        lines.append("  ] },")
    lines += ["]", "", "[workload.population]"]
    for region in regions:
        if region.code in outbound:
            persons = max(2000, int(outbound[region.code] * shape.days * 25))
            lines.append(f'"{region.code}" = {{ persons = {persons}, insurance = '
                         '{ resident = "0.55", employee = "0.45" } }')
    for region in regions:
        for number, level in enumerate(levels(region, treating), start=1):
            lines += ["", "[[hospital]]", f'id = "H{region.code}-{number:05d}"',
                      f'region = "{region.code}"', f"level = {level}"]
    return "\n".join(lines) + "\n"


# -- the shapes the benchmarks use -------------------------------------------------------

NATIONAL = Shape()
E2E = Shape(regions=16, hospitals=200, claims_per_day=100, days=30,
            title="The end-to-end benchmark's workload, a slice of the national month",
            command="python benchmarks/shape.py --e2e",
            notes=("Run it for as many days as the benchmark needs: clearsim run "
                   "scenarios/bench/e2e.toml --workload --days N",))


def scaling(regions: int = 10, hospitals: int = 100, claims_per_day: float = 100,
            days: int = 3) -> Shape:
    """A scaling point: the same claims a day whatever the regions and hospitals."""
    return Shape(regions=regions, hospitals=hospitals, claims_per_day=claims_per_day,
                 days=days, title=f"Scaling point: {regions} regions, {hospitals} hospitals",
                 command=f"python benchmarks/shape.py --regions {regions} "
                         f"--hospitals {hospitals} --claims-per-day {claims_per_day:g} "
                         f"--days {days}")


def cut_down(days: int, scale: float) -> Shape:
    """The national month's regions and hospitals with a fraction of its flows, for fewer
    days (to develop against, or to see how far the month can go)."""
    return Shape(claims_per_day=NATIONAL.claims_per_day * scale, days=days,
                 title=f"The national month cut down: {days} days, flows x{scale:g}",
                 command=f"python benchmarks/shape.py --national --days {days} "
                         f"--scale {scale:g}")


def main() -> None:
    import argparse
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description="Write a generated scenario (the committed "
                                     "ones with --national / --e2e and no other option).")
    parser.add_argument("--national", action="store_true",
                        help="scenarios/national-month.toml")
    parser.add_argument("--e2e", action="store_true", help="scenarios/bench/e2e.toml")
    parser.add_argument("--regions", type=int)
    parser.add_argument("--hospitals", type=int)
    parser.add_argument("--claims-per-day", type=float)
    parser.add_argument("--days", type=int)
    parser.add_argument("--scale", type=float, help="with --national: the flows times this")
    parser.add_argument("--out", type=Path, help="where to write (default: the committed "
                                                 "path, or stdout for a scaling point)")
    args = parser.parse_args()
    if args.national and (args.days or args.scale):
        shape, default = cut_down(args.days or 30, args.scale or 1.0), None
    elif args.national:
        shape, default = NATIONAL, root / "scenarios" / "national-month.toml"
    elif args.e2e:
        shape, default = E2E, root / "scenarios" / "bench" / "e2e.toml"
    else:
        shape, default = scaling(args.regions or 10, args.hospitals or 100,
                                 args.claims_per_day or 100, args.days or 3), None
    text = build(shape)
    out = args.out or default
    if out is None:
        print(text, end="")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out} ({len(text) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()

"""Scenario files (SCENARIO.md): regions with policies and catalogs, hospitals, run settings.

An invalid scenario is refused before anything runs, with the file, the key path
(``region[1].policy.resident.cross_region.referred.ratio``) and what is wrong; so is one
whose values the network's messages could not carry (the limits of ``clearsim.sim.claims``:
amounts within ``clearsim.money.MAX_FEN``, ids within the interface's lengths, dates a run's
calendar can hold), so ``clearsim settle`` and ``clearsim run`` accept the same scenarios.
"""

from __future__ import annotations

import csv
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime
from pathlib import Path

from clearsim.domain.audit import AuditRules, Rule
from clearsim.domain.calendar import Calendar
from clearsim.domain.clearing import ClearingTerms
from clearsim.domain.reconciliation import ReconciliationTerms
from clearsim.domain.catalog import Catalog, CatalogItem, ItemClass
from clearsim.domain.policy import InsuranceType, Plan, Policy, Tier
from clearsim.errors import ClearsimError, ErrorCode
from clearsim.faults import Fault, parse_fault
from clearsim.messages import HUB, hospitals_node, region_node
from clearsim.money import MAX_FEN, Ratio, format_fen, parse_fen
from clearsim.sim.claims import (LATEST_DATE, MAX_CODE_CHARS, check_amount, check_date,
                                 check_id, shown)
from clearsim.sim.files import read_user_file
from clearsim.sim.workload import Workload, parse_workload

_MAX_RATIO_PLACES = 6
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")   # no exponent, underscore or space
_MAX_INT = 2 ** 31 - 1          # an Avro int (a policy version travels as one)
_MAX_WORKING_DAYS = 366         # a step of the cycles waits at most a year of working days
_TIER_KEYS = {"in_region": ("level1", "level2", "level3"),
              "cross_region": ("referred", "not_referred")}


@dataclass(frozen=True)
class SimConfig:
    seed: int = 0
    start: date = date(2019, 1, 1)
    days: int = 30
    claims: Path | None = None
    calendar: Calendar = field(default_factory=Calendar)


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    policy: Policy | None
    catalog: Catalog


@dataclass(frozen=True)
class Hospital:
    id: str
    region: str
    level: int


@dataclass(frozen=True)
class Scenario:
    path: Path
    sim: SimConfig
    regions: dict[str, Region]
    hospitals: dict[str, Hospital]
    workload: Workload | None = None
    clearing: ClearingTerms = field(default_factory=ClearingTerms)
    reconciliation: ReconciliationTerms = field(default_factory=ReconciliationTerms)
    audit: AuditRules = field(default_factory=AuditRules)
    faults: tuple[Fault, ...] = ()
    repair: bool = True            # [faults] repair: faults found are repaired
    files: tuple[Path, ...] = ()   # the files it was read from: itself and its catalogs

    def node_ids(self) -> list[str]:
        """The nodes a run of this scenario has: the hub, a node per region, a hospitals
        node per region with hospitals."""
        return ([HUB] + [region_node(code) for code in self.regions]
                + sorted({hospitals_node(h.region) for h in self.hospitals.values()}))


class _Reader:
    """Walks the TOML tree, naming every key path in its errors."""

    def __init__(self, path: Path):
        self.path = path
        self.files: list[Path] = []         # files read beside the scenario (catalogs)

    def fail(self, keypath: str, what: str) -> ClearsimError:
        return ClearsimError(ErrorCode.SCENARIO_INVALID, f"{self.path}: {keypath}: {what}",
                             keypath)

    def table(self, value, keypath: str, allowed: set[str], required: set[str] = frozenset()):
        if not isinstance(value, dict):
            raise self.fail(keypath, f"must be a table, not {type(value).__name__}")
        for key in value:
            if key not in allowed:
                raise self.fail(_join(keypath, key),
                                f"unknown key (allowed: {', '.join(sorted(allowed))})")
        for key in sorted(required):
            if key not in value:
                raise self.fail(_join(keypath, key), "is required")
        return value

    def string(self, value, keypath: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(keypath, "must be a non-empty string")
        return value

    def ident(self, value, keypath: str, limit: int | None = None) -> str:
        """An id the messages carry (a hospital, a catalog code): within the interface's
        length, one word of printable characters."""
        value = self.string(value, keypath)
        try:
            return check_id(value, keypath, *(() if limit is None else (limit,)))
        except ClearsimError as exc:
            raise self.fail(keypath, exc.rejection.message.removeprefix(f"{keypath} ")) \
                from None

    def integer(self, value, keypath: str, low: int | None = None,
                high: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(keypath, f"must be an integer, not {shown(value)}")
        if low is not None and value < low:
            raise self.fail(keypath, f"must be at least {low}")
        if high is not None and value > high:
            raise self.fail(keypath, f"must be at most {high}")
        return value

    def amount(self, value, keypath: str) -> int:
        if not isinstance(value, str) or not _PLAIN_DECIMAL.fullmatch(value):
            raise self.fail(keypath, f"must be a decimal string such as \"600.00\", "
                                     f"not {value!r}")
        if len(value.lstrip("-").split(".")[0].lstrip("0")) > 16:
            raise self.fail(keypath, f"{shown(value)} is more than the interface carries "
                                     f"(at most {format_fen(MAX_FEN)} yuan)")
        try:
            return check_amount(parse_fen(value, keypath), keypath)
        except ClearsimError as exc:
            raise self.fail(keypath, exc.rejection.message) from None
        except ArithmeticError:   # too many digits for Decimal to hold to the fen
            raise self.fail(keypath, f"{shown(value)} is too large") from None

    def ratio_any(self, value, keypath: str) -> Ratio:
        """A non-negative decimal string with no upper bound (a rate, a weight)."""
        if not isinstance(value, str) or not _PLAIN_DECIMAL.fullmatch(value):
            raise self.fail(keypath, f"must be a decimal string such as \"2.5\", not {value!r}")
        try:
            return Ratio.parse(value, keypath, at_most_one=False)
        except ClearsimError as exc:
            raise self.fail(keypath, exc.rejection.message) from None

    def ratio(self, value, keypath: str) -> Ratio:
        if not isinstance(value, str) or not _PLAIN_DECIMAL.fullmatch(value):
            raise self.fail(keypath, f"must be a decimal string such as \"0.50\", not {value!r}")
        try:
            ratio = Ratio.parse(value, keypath)
        except ClearsimError as exc:
            raise self.fail(keypath, exc.rejection.message) from None
        places = -ratio.as_decimal().normalize().as_tuple().exponent
        if places > _MAX_RATIO_PLACES:
            raise self.fail(keypath, f"has more than {_MAX_RATIO_PLACES} decimals")
        return ratio


def _join(keypath: str, key: str) -> str:
    return f"{keypath}.{key}" if keypath else key


def load_scenario(path) -> Scenario:
    path = Path(path)
    text = read_user_file(path, ErrorCode.SCENARIO_INVALID)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ClearsimError(ErrorCode.SCENARIO_INVALID, f"{path}: not valid TOML: {exc}",
                            "file") from None
    except RecursionError:
        raise ClearsimError(ErrorCode.SCENARIO_INVALID, f"{path}: TOML nested too deeply",
                            "file") from None
    except ValueError as exc:   # an integer of thousands of digits
        raise ClearsimError(ErrorCode.SCENARIO_INVALID,
                            f"{path}: not valid TOML: {str(exc).split(';')[0]}",
                            "file") from None
    r = _Reader(path)
    r.table(data, "", {"sim", "region", "hospital", "workload", "clearing", "reconciliation",
                       "audit", "fault", "faults"}, {"region"})
    sim = _sim(r, data.get("sim", {}), path.parent)
    region_list = data["region"]
    if not isinstance(region_list, list) or not region_list:
        raise r.fail("region", "must be a non-empty array of tables ([[region]])")
    regions: dict[str, Region] = {}
    for i, raw in enumerate(region_list):
        region = _region(r, raw, f"region[{i}]", path.parent)
        if region.code in regions:
            raise r.fail(f"region[{i}].code", f"duplicate region code {region.code}")
        regions[region.code] = region
    hospitals: dict[str, Hospital] = {}
    hospital_list = data.get("hospital", [])
    if not isinstance(hospital_list, list):
        raise r.fail("hospital", "must be an array of tables ([[hospital]])")
    for i, raw in enumerate(hospital_list):
        kp = f"hospital[{i}]"
        r.table(raw, kp, {"id", "region", "level"}, {"id", "region", "level"})
        hospital = Hospital(r.ident(raw["id"], f"{kp}.id"), r.string(raw["region"],
                                                                     f"{kp}.region"),
                            r.integer(raw["level"], f"{kp}.level"))
        if hospital.region not in regions:
            raise r.fail(f"{kp}.region", f"unknown region {hospital.region!r}")
        if hospital.level not in (1, 2, 3):
            raise r.fail(f"{kp}.level", f"must be 1, 2 or 3, not {hospital.level}")
        if hospital.id in hospitals:
            raise r.fail(f"{kp}.id", f"duplicate hospital id {hospital.id!r}")
        hospitals[hospital.id] = hospital
    workload = parse_workload(r, data["workload"], set(regions)) if "workload" in data else None
    scenario = Scenario(path, sim, regions, hospitals, workload,
                        _terms(r, data.get("clearing", {}), "clearing", ClearingTerms),
                        _terms(r, data.get("reconciliation", {}), "reconciliation",
                               ReconciliationTerms),
                        _audit(r, data.get("audit", {})))
    return replace(_faults(r, data, scenario), files=(path, *r.files))


def _faults(r: _Reader, data: dict, scenario: Scenario) -> Scenario:
    """``[[fault]]`` tables (clearsim.faults) and the ``[faults]`` settings."""
    settings = r.table(data.get("faults", {}), "faults", {"repair"})
    repair = settings.get("repair", True)
    if not isinstance(repair, bool):
        raise r.fail("faults.repair", f"must be true or false, not {repair!r}")
    raw = data.get("fault", [])
    if not isinstance(raw, list):
        raise r.fail("fault", "must be an array of tables ([[fault]])")
    nodes = scenario.node_ids()
    faults = []
    for i, table in enumerate(raw):
        try:
            fault = parse_fault(table, f"fault[{i}]", index=i, seed=scenario.sim.seed,
                                nodes=nodes)
        except ClearsimError as exc:
            raise r.fail(exc.rejection.field or f"fault[{i}]",
                         exc.rejection.message.split(": ", 1)[-1]) from None
        if fault.id in {f.id for f in faults}:
            raise r.fail(f"fault[{i}].id", f"duplicate fault id {fault.id!r}")
        faults.append(fault)
    return replace(scenario, faults=tuple(faults), repair=repair)


_AUDIT_RULES = {"duplicate_admission": "within_days", "split_admission": "within_days",
                "excessive_quantity": "max_lines_per_code", "ultra_high_cost": "above"}


def _audit(r: _Reader, raw) -> AuditRules:
    r.table(raw, "audit", {"after_working_days", "upheld_appeals", *_AUDIT_RULES})
    rules = {}
    for name, limit_key in _AUDIT_RULES.items():
        if name in raw:
            kp = f"audit.{name}"
            rule = r.table(raw[name], kp, {limit_key, "refuse_share"}, {limit_key, "refuse_share"})
            limit = (r.amount(rule[limit_key], f"{kp}.{limit_key}") if limit_key == "above"
                     else r.integer(rule[limit_key], f"{kp}.{limit_key}", low=0,
                                    high=_MAX_WORKING_DAYS if limit_key == "within_days"
                                    else _MAX_INT))
            rules[name] = Rule(limit, r.ratio(rule["refuse_share"], f"{kp}.refuse_share"))
    upheld = raw.get("upheld_appeals", [])
    if not isinstance(upheld, list) or any(not isinstance(u, str) or u not in _AUDIT_RULES
                                           for u in upheld):
        raise r.fail("audit.upheld_appeals",
                     f"must list rule names among {', '.join(_AUDIT_RULES)}")
    return AuditRules(r.integer(raw.get("after_working_days", 5), "audit.after_working_days",
                                low=0, high=_MAX_WORKING_DAYS),
                      upheld_rules=frozenset(upheld), **rules)


def _terms(r: _Reader, raw, keypath: str, kind):
    """A table of working-day counts, each optional, each at least 0."""
    r.table(raw, keypath, {f.name for f in fields(kind)})
    return kind(**{k: r.integer(v, f"{keypath}.{k}", low=0, high=_MAX_WORKING_DAYS)
                   for k, v in raw.items()})


def _date(r: _Reader, value, keypath: str) -> date:
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError:
            raise r.fail(keypath, f"{shown(value)} is not a date (YYYY-MM-DD)") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        try:
            return check_date(value, keypath)
        except ClearsimError as exc:
            raise r.fail(keypath, exc.rejection.message.removeprefix(f"{keypath} ")) from None
    raise r.fail(keypath, "must be a date (YYYY-MM-DD)")


def _dates(r: _Reader, value, keypath: str) -> frozenset[date]:
    if not isinstance(value, list):
        raise r.fail(keypath, "must be an array of dates")
    return frozenset(_date(r, v, f"{keypath}[{i}]") for i, v in enumerate(value))


def _sim(r: _Reader, raw, base: Path) -> SimConfig:
    r.table(raw, "sim", {"seed", "start", "days", "claims", "holidays", "workdays"})
    claims = raw.get("claims")
    start = _date(r, raw.get("start", "2019-01-01"), "sim.start")
    days = r.integer(raw.get("days", 30), "sim.days", low=1)
    if days > (LATEST_DATE - start).days + 1:
        raise r.fail("sim.days", f"{days} days from {start} run past {LATEST_DATE}, the last "
                                 "date a run's calendar can hold")
    return SimConfig(seed=r.integer(raw.get("seed", 0), "sim.seed"),
                     start=start, days=days,
                     claims=None if claims is None else base / r.string(claims, "sim.claims"),
                     calendar=Calendar(_dates(r, raw.get("holidays", []), "sim.holidays"),
                                       _dates(r, raw.get("workdays", []), "sim.workdays")))


def _region(r: _Reader, raw, kp: str, base: Path) -> Region:
    r.table(raw, kp, {"code", "name", "policy", "catalog"}, {"code", "catalog"})
    code = r.string(raw["code"], f"{kp}.code")
    if not re.fullmatch(r"\d{6}", code):
        raise r.fail(f"{kp}.code", f"{code!r} is not a 6-digit area code (admdvs)")
    name = r.string(raw.get("name", code), f"{kp}.name")
    policy = _policy(r, raw["policy"], f"{kp}.policy", code) if "policy" in raw else None
    return Region(code, name, policy, _catalog(r, raw["catalog"], f"{kp}.catalog", code, base))


def _policy(r: _Reader, raw, kp: str, region: str) -> Policy:
    insurances = {i.value for i in InsuranceType}
    r.table(raw, kp, insurances | {"version"})
    plans = {}
    for insurance in InsuranceType:
        if insurance.value not in raw:
            continue
        pk = f"{kp}.{insurance.value}"
        plan = r.table(raw[insurance.value], pk, {"annual_cap", *_TIER_KEYS},
                       {"annual_cap", *_TIER_KEYS})
        tiers = {}
        for group, names in _TIER_KEYS.items():
            r.table(plan[group], f"{pk}.{group}", set(names), set(names))
            for name in names:
                tk = f"{pk}.{group}.{name}"
                tier = r.table(plan[group][name], tk, {"deductible", "ratio"},
                               {"deductible", "ratio"})
                tiers[f"{group}.{name}"] = Tier(r.amount(tier["deductible"], f"{tk}.deductible"),
                                                r.ratio(tier["ratio"], f"{tk}.ratio"))
        plans[insurance] = Plan(r.amount(plan["annual_cap"], f"{pk}.annual_cap"), tiers)
    if not plans:
        raise r.fail(kp, "needs at least one of: employee, resident")
    return Policy(region, r.integer(raw.get("version", 1), f"{kp}.version", low=1,
                                    high=_MAX_INT), plans)


def _csv_rows(r: _Reader, csv_path: Path, kp: str) -> tuple[list[dict], list[str]]:
    """A CSV catalog's rows (empty cells dropped) and, for each, "file line N"."""
    rows, lines = [], []
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                if None in row:
                    raise r.fail(f"{kp}[{len(rows)}]", f"{csv_path} line {reader.line_num}: "
                                 f"more cells than the header's columns")
                rows.append({k: v for k, v in row.items() if v not in (None, "")})
                lines.append(f"{csv_path.name} line {reader.line_num}")
    except OSError as exc:
        raise r.fail(kp, f"cannot read {csv_path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise r.fail(kp, f"{csv_path} is not UTF-8 text (byte {exc.start})") from None
    except csv.Error as exc:
        raise r.fail(kp, f"{csv_path} is not valid CSV: {exc}") from None
    return rows, lines


def _catalog(r: _Reader, raw, kp: str, region: str, base: Path) -> Catalog:
    r.table(raw, kp, {"items", "csv"})
    if ("items" in raw) == ("csv" in raw):
        raise r.fail(kp, "give exactly one of items (inline) or csv (a file)")
    if "csv" in raw:
        csv_path = base / r.string(raw["csv"], f"{kp}.csv")
        r.files.append(csv_path)
        rows, lines = _csv_rows(r, csv_path, f"{kp}.csv")
        where = f"{kp}.csv"
    else:
        rows = raw["items"]
        if not isinstance(rows, list):
            raise r.fail(f"{kp}.items", "must be an array of tables")
        lines = [None] * len(rows)
        where = f"{kp}.items"
    items: dict[str, CatalogItem] = {}
    for i, row in enumerate(rows):
        try:
            item = _catalog_item(r, row, f"{where}[{i}]")
            if item.code in items:
                raise r.fail(f"{where}[{i}].code", f"duplicate catalog code {item.code!r}")
        except ClearsimError as exc:
            if lines[i] is None:
                raise
            raise ClearsimError(exc.code, f"{exc.rejection.message} ({lines[i]})",
                                exc.rejection.field) from None
        items[item.code] = item
    return Catalog(region, items)


def _catalog_item(r: _Reader, row, ik: str) -> CatalogItem:
    """Class B needs its self-pay share; A and C refuse one rather than ignore it."""
    r.table(row, ik, {"code", "name", "class", "b_selfpay_share"}, {"code", "class"})
    code = r.ident(row["code"], f"{ik}.code", MAX_CODE_CHARS)
    try:
        item_class = ItemClass(row["class"])
    except ValueError:
        raise r.fail(f"{ik}.class", f"{row['class']!r} is not A, B or C") from None
    share = None
    if item_class is ItemClass.B:
        if "b_selfpay_share" not in row:
            raise r.fail(f"{ik}.b_selfpay_share", "is required for a class B item")
        share = r.ratio(row["b_selfpay_share"], f"{ik}.b_selfpay_share")
    elif "b_selfpay_share" in row:
        raise r.fail(f"{ik}.b_selfpay_share", f"applies to class B only, not {item_class.value}")
    return CatalogItem(code, r.string(row.get("name", code), f"{ik}.name"), item_class, share)

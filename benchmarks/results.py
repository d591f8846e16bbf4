"""RESULTS.md and results.json: every figure of a benchmark run, beside its target and the
machine's floor.

``benchmarks/run`` writes ``results.json`` (the run's head and every figure) and renders
``RESULTS.md`` from it; ``benchmarks/run --render`` renders it again from the JSON alone.
Where a target is missed, RESULTS.md says by how much and what the figures of the same run
say stands in the way, and leaves a marked place for what the profile says. What is
written between a profile's markers is kept when RESULTS.md is rendered again.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, fields
from pathlib import Path

from figures import Figure

SECTION_ORDER = ("floor", "settlement engine", "end to end (in-process)",
                 "end to end (Kafka, SQLite)", "end to end (Kafka, PostgreSQL)", "scaling",
                 "national month")
PROFILE_TODO = "_To be filled in: what a profile (py-spy) of this run shows stands in the way._"
_PROFILE = re.compile(r"<!-- profile: (?P<key>.+?) -->\n(?P<text>.*?)\n<!-- /profile -->",
                      re.S)


# -- results.json -------------------------------------------------------------------------

def save(path: Path, head: dict, figures: list[Figure]) -> None:
    path.write_text(json.dumps({"run": head, "figures": [asdict(f) for f in figures]},
                               indent=2, default=str) + "\n")


def load(path: Path) -> tuple[dict, list[Figure]]:
    data = json.loads(path.read_text())
    names = {f.name for f in fields(Figure)}
    return data["run"], [Figure(**{k: v for k, v in f.items() if k in names})
                         for f in data["figures"]]


# -- formatting ---------------------------------------------------------------------------

def number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if unit == "x":
        return f"{value:.2f}"
    magnitude = abs(value)
    if magnitude >= 100 or (magnitude and value == int(value) and magnitude >= 10):
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def target(f: Figure) -> str:
    if f.target is None:
        return ""
    return f"{'≥' if f.higher_is_better else '≤'} {number(f.target, f.unit)}"


def versus_target(f: Figure) -> str:
    if f.target == 0 and not f.higher_is_better and f.value is not None:
        return "met" if f.met() else "missed"         # a count that must be zero
    ratio = f.target_ratio()
    if ratio is None:
        return "" if f.target is None else "not measured"
    return f"{ratio:.2f}x {'met' if ratio >= 1 else 'missed'}"


def versus_floor(f: Figure) -> str:
    ratio = f.floor_ratio()
    return "" if ratio is None else f"{ratio:.1%} of {number(f.floor, f.unit)}"


def cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def shortfall(f: Figure) -> str:
    """By how much a missed target is missed, in words."""
    if f.value is None:
        return f"not measured ({f.note})" if f.note else "not measured"
    if f.higher_is_better:
        return (f"{number(f.value, f.unit)} {f.unit} against a target of at least "
                f"{number(f.target, f.unit)}: {f.target / f.value:.1f} times short, "
                f"{f.value / f.target:.1%} of the target" if f.value else
                f"0 {f.unit} against a target of at least {number(f.target, f.unit)}")
    if not f.target:
        return f"{number(f.value, f.unit)} {f.unit} where there must be none"
    return (f"{number(f.value, f.unit)} {f.unit} against a target of at most "
            f"{number(f.target, f.unit)}: {f.value / f.target:.1f} times over")


def key(f: Figure) -> str:
    return f"{f.section} / {f.name}"


# -- RESULTS.md ---------------------------------------------------------------------------

def profiles(previous: str | None) -> dict[str, str]:
    """What was written between the profile markers of an earlier RESULTS.md."""
    if not previous:
        return {}
    return {m["key"]: m["text"] for m in _PROFILE.finditer(previous)
            if PROFILE_TODO not in m["text"]}


def sections(figures: list[Figure]) -> list[str]:
    seen = list(dict.fromkeys(f.section for f in figures))
    return ([s for s in SECTION_ORDER if s in seen]
            + [s for s in seen if s not in SECTION_ORDER])


def render(head: dict, figures: list[Figure], previous: str | None = None) -> str:
    """RESULTS.md for a run's head and figures; ``previous``: the RESULTS.md it replaces
    (the profile notes written into it are kept)."""
    kept = profiles(previous)
    machine = head.get("machine", {})
    lines = ["# Benchmark results", "",
             "Written by `benchmarks/run` from `benchmarks/results.json` (re-render with "
             "`benchmarks/run --render`); do not edit by hand, except between the "
             "`profile` markers, which are kept.", ""]
    if head.get("quick"):
        lines += ["**Quick run**: smaller sizes, to check that the benchmarks work; its "
                  "figures are not the project's results.", ""]
    lines += [
        "| run | |", "| --- | --- |",
        f"| date | {head.get('date', '?')} |",
        f"| command | `{head.get('command', 'benchmarks/run')}` |",
        f"| machine | {machine.get('cores', '?')} cores, {machine.get('memory_gib', '?')} GiB, "
        f"{cell(machine.get('platform', ''))} |",
        f"| Python | {machine.get('python', '?')} |",
        f"| load average | {_load(head.get('load'), machine.get('cores'))} |",
        f"| Kafka | {cell(_server(head.get('kafka')))} |",
        f"| PostgreSQL | {cell(_server(head.get('postgres')))} |",
        "", "| benchmark | took | measured | |", "| --- | --- | --- | --- |"]
    for name, info in head.get("benchmarks", {}).items():
        lines.append(f"| {name} | {duration(info.get('seconds'))} | {info.get('date', '')} | "
                     f"{cell(info.get('error') or info.get('note') or '')} |")
    headline = [f for f in figures if f.detail.get("headline")]
    if headline:
        lines += ["", "## Headline", "", "| figure | value | target | vs target | vs floor |",
                  "| --- | --- | --- | --- | --- |"]
        for f in headline:
            lines.append(f"| {cell(f.section)}: {cell(f.name)} | {number(f.value, f.unit)} "
                         f"{f.unit} | {target(f)} | {versus_target(f)} | {versus_floor(f)} |")
    for section in sections(figures):
        rows = [f for f in figures if f.section == section]
        lines += ["", f"## {section}", "",
                  "| figure | value | unit | target | vs target | vs floor | note |",
                  "| --- | ---: | --- | --- | --- | --- | --- |"]
        for f in rows:
            lines.append(f"| {cell(f.name)} | {number(f.value, f.unit)} | {f.unit} | "
                         f"{target(f)} | {versus_target(f)} | {versus_floor(f)} | "
                         f"{cell(f.note)} |")
        missed = [f for f in rows if f.met() is False]
        unmeasured = [f for f in rows if f.target is not None and f.value is None]
        if missed or unmeasured:
            lines += ["", "### What stands in the way"]
        if unmeasured:
            lines += ["", "Not measured in this run: " + "; ".join(
                f"**{f.name}** ({f.note or 'no reason given'})" for f in unmeasured) + "."]
        for f in missed:
            why = f.detail.get("why") or ""
            lines += ["", f"**{f.name}**: {shortfall(f)}." + (f" {why}" if why else ""), "",
                      f"<!-- profile: {key(f)} -->",
                      kept.get(key(f), f"Profile: {PROFILE_TODO}"),
                      "<!-- /profile -->"]
    return "\n".join(lines) + "\n"


def _load(load: dict | None, cores) -> str:
    """The one-minute load average at the start and the end of the run."""
    if not load or load.get("start") is None:
        return "not recorded"
    text = f"{load['start']} at the start, {load.get('end', '?')} at the end"
    if cores and load["start"] > cores:
        text += f" (above the {cores} cores at the start: other work shared the machine)"
    elif cores and (load.get("end") or 0) > cores:
        text += (" (the end counts the run's own last benchmark: the load average counts "
                 "every runnable thread and process)")
    return text


def _server(info: dict | None) -> str:
    if not info:
        return "none"
    return " ".join(filter(None, [info.get("version"), f"({info['how']})"
                                  if info.get("how") else ""])) or "none"

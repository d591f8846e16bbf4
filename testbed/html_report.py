"""The run report: what ``clearsim run --out DIR`` wrote, as one HTML page people can read.

The page stands alone and opens offline: no script, and no stylesheet, font or image from
elsewhere. Every chart is a Vega-Lite specification built with altair and rendered to SVG by
vl-convert, put inline; a chart with nothing to draw is a sentence instead. The page is
made only from the run directory's files (summary.json, claims.csv or claims.json,
clearing.csv, cases.csv, distributions.csv, delivery.json, faults.json), every text taken
from them is escaped, and person ids are never shown in full.
"""

from __future__ import annotations

import csv
import html
import json
import math
import re
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from clearsim.errors import ClearsimError, ErrorCode
from clearsim.money import parse_fen
from clearsim.privacy import Masker

COUNTS = ("claims", "direct", "manual", "rejected", "unfinished", "agreed")
AMOUNTS = ("charges", "fund_pay", "personal_pay")
PARTIES = ("hospital", "treating_region", "hub", "insuring_region")
ATTENTION_ROWS = 50           # claims listed by name at most; the rest are counted
CLEARING_REGIONS = 20         # regions drawn in the clearing chart at most
PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6",
           "#9d755d", "#bab0ac", "#eeca3b"]


# -- personal data ---------------------------------------------------------------------

_PEOPLE = Masker()             # the ids a message names as a person's, as the nodes word them


def scrub(text: object) -> str:
    """Free text from a run's files with every person id or name it mentions masked."""
    return _PEOPLE.text(str(text))


def e(text: object) -> str:
    """Any text that goes into the page: person ids masked, then escaped."""
    return html.escape(scrub("" if text is None else text), quote=True)


# -- reading the run directory ---------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ClaimRow:
    claim_id: str
    status: str
    fund_pay: int | None          # fen
    agreed: bool
    parties: dict
    error_code: str | None
    latency_ms: float | None
    reconciled_on: date | None
    reconciliation_days: int | None
    paid_on: date | None
    payback_days: int | None

    @property
    def settled_on(self) -> date | None:
        """The claim's day, as far as the run's files tell it (paid or reconciled claims)."""
        if self.paid_on is not None and self.payback_days is not None:
            return self.paid_on - timedelta(days=self.payback_days)
        if self.reconciled_on is not None and self.reconciliation_days is not None:
            return self.reconciled_on - timedelta(days=self.reconciliation_days)
        return None


@dataclass
class Run:
    name: str
    summary: dict
    claims: list[ClaimRow]
    clearing: list[dict] = field(default_factory=list)
    cases: list[dict] = field(default_factory=list)
    distributions: list[dict] = field(default_factory=list)
    delivery: dict | None = None
    faults: list[dict] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


@contextmanager
def _reading(name: str):
    """Anything wrong in one of the run's files is one INVALID_INPUT naming that file."""
    try:
        yield
    except ClearsimError as exc:
        raise ClearsimError(ErrorCode.INVALID_INPUT,
                            f"{name} cannot be read: {exc.rejection.message}", name) from None
    except KeyError as exc:
        raise ClearsimError(ErrorCode.INVALID_INPUT,
                            f"{name} cannot be read: it lacks {exc}", name) from None
    except (OSError, ValueError, TypeError, AttributeError, csv.Error) as exc:
        raise ClearsimError(ErrorCode.INVALID_INPUT,
                            f"{name} cannot be read: {exc}", name) from None


def _need(record, keys, what: str = "a record") -> None:
    """KeyError naming the first key ``record`` lacks (TypeError when it is no mapping)."""
    if not isinstance(record, dict):
        raise TypeError(f"{what} is not a JSON object")
    for key in keys:
        if key not in record:
            raise KeyError(key)


def _csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _day(text) -> date | None:
    return date.fromisoformat(text) if text else None


def _int(text) -> int | None:
    return None if text in (None, "") else int(text)


def _float(text) -> float | None:
    return None if text in (None, "") else float(text)


def _fen(text) -> int | None:
    return None if text in (None, "") else parse_fen(text, allow_negative=True)


def _claims_from_csv(path: Path) -> list[ClaimRow]:
    out = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out.append(ClaimRow(
                row["claim_id"], row["status"], _fen(row["fund_pay"]),
                row["agreed"] == "True", {p: row[p] for p in PARTIES if row.get(p)},
                row["error_code"] or None, _float(row["latency_ms"]),
                _day(row["reconciled_on"]), _int(row["reconciliation_latency_days"]),
                _day(row["paid_on"]), _int(row["payback_days"])))
    return out


def _claims_from_json(path: Path) -> list[ClaimRow]:
    return [ClaimRow(
        c["claim_id"], c["status"], _fen(c["fund_pay"]), bool(c["agreed"]),
        dict(c.get("parties") or {}), (c.get("error") or {}).get("code"),
        c.get("latency_ms"), _day(c.get("reconciled_on")),
        c.get("reconciliation_latency_days"), _day(c.get("paid_on")), c.get("payback_days"))
        for c in json.loads(path.read_text(encoding="utf-8"))]


def load(run_dir: Path) -> Run:
    """Read what ``clearsim run --out RUN_DIR`` wrote; ClearsimError when it cannot."""
    if not run_dir.exists():
        raise ClearsimError(ErrorCode.INVALID_INPUT,
                            f"run directory {run_dir} does not exist", "RUN_DIR")
    if not run_dir.is_dir():
        raise ClearsimError(ErrorCode.INVALID_INPUT,
                            f"{run_dir} is not a directory", "RUN_DIR")
    if not (run_dir / "summary.json").is_file():
        raise ClearsimError(ErrorCode.INVALID_INPUT,
                            f"{run_dir} is not a run directory: it has no summary.json "
                            f"(`clearsim run SCENARIO --out {run_dir}` writes one)", "RUN_DIR")
    with _reading("summary.json"):
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        _need(summary, COUNTS + AMOUNTS, "the summary")
        for key in COUNTS:
            if not isinstance(summary[key], int):
                raise TypeError(f"{key} is {summary[key]!r}, not a whole number")
        for key in AMOUNTS:
            parse_fen(summary[key], key)
    if (run_dir / "claims.csv").is_file():
        with _reading("claims.csv"):
            claims = _claims_from_csv(run_dir / "claims.csv")
    elif (run_dir / "claims.json").is_file():
        with _reading("claims.json"):
            claims = _claims_from_json(run_dir / "claims.json")
    else:
        raise ClearsimError(ErrorCode.INVALID_INPUT,
                            f"{run_dir} has a summary.json but neither claims.csv nor "
                            "claims.json", "RUN_DIR")
    run = Run(name=run_dir.resolve().name, summary=summary, claims=claims)
    optional = ("clearing.csv", "cases.csv", "distributions.csv", "delivery.json")
    for name in optional:
        path = run_dir / name
        if not path.is_file():
            run.missing.append(name)
            continue
        with _reading(name):
            if name == "clearing.csv":
                run.clearing = [{**row, **{k: _fen(row[k]) for k in (
                    "payable", "receivable", "net", "paid", "disbursed", "paid_to_hospitals")}}
                    for row in _csv(path)]
            elif name == "cases.csv":
                run.cases = _csv(path)
                for row in run.cases:
                    _need(row, ("cause", "state"))
                    row["stmt_date"] = _day(row["stmt_date"])
            elif name == "distributions.csv":
                run.distributions = _csv(path)
            else:
                run.delivery = json.loads(path.read_text(encoding="utf-8"))
    if (run_dir / "faults.json").is_file():
        with _reading("faults.json"):
            run.faults = json.loads((run_dir / "faults.json").read_text(encoding="utf-8"))
            for fault in run.faults:
                _need(fault, ("fault", "kind", "claims"), "a fault")
                for struck in fault["claims"]:
                    _need(struck, ("claim_id",), "a struck claim")
                    struck["injected_on"] = _day(struck.get("injected_on"))
                fault["from"], fault["until"] = _day(fault.get("from")), _day(fault.get("until"))
    return run


# -- charts ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Chart:
    """One chart of the page: its SVG, or the sentence that stands in for it."""
    id: str
    title: str
    svg: str | None = None
    empty: str | None = None


def _vl_version() -> str | None:
    """The Vega-Lite version altair writes, as vl-convert names it; None (its newest) when
    this vl-convert does not carry that version."""
    import altair as alt
    import vl_convert as vlc
    major, minor = alt.SCHEMA_VERSION.lstrip("v").split(".")[:2]
    return f"v{major}_{minor}" if f"{major}.{minor}" in vlc.get_vegalite_versions() else None


def _render(chart_id: str, title: str, chart) -> Chart:
    """A Vega-Lite chart rendered to SVG, its ids made unique within the page."""
    import vl_convert as vlc
    chart = chart.configure(font="DejaVu Sans, Verdana, sans-serif").configure_view(
        stroke=None).configure_axis(labelFontSize=11, titleFontSize=12, gridColor="#e6e6e6",
                                    labelColor="#333", titleColor="#333",
                                    titleFontWeight="normal").configure_legend(
        labelFontSize=11, titleFontSize=11).configure_title(
        fontSize=15, subtitleFontSize=12, subtitleColor="#555", anchor="start", offset=8)
    svg = vlc.vegalite_to_svg(chart.to_dict(), vl_version=_vl_version(), allowed_base_urls=[])
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{chart_id}-{m[1]}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{chart_id}-{m[1]})", svg)
    svg = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{chart_id}-{m[1]}"', svg)
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{html.escape(title)}" ', 1)
    return Chart(chart_id, title, svg=svg)


def _title(text: str, subtitle: str | list[str] | None = None):
    import altair as alt
    return alt.TitleParams(text, subtitle=subtitle or "")


def _nice(x: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten that is at least ``x``."""
    power = 10 ** math.floor(math.log10(x)) if x > 0 else 1
    return next(m * power for m in (1, 2, 5, 10) if m * power >= x)


def _count_axis(top: int):
    """A claims axis with whole-number ticks only."""
    import altair as alt
    step = max(1, int(_nice(top / 5)))
    ticks = list(range(0, top + step, step))
    return alt.Y("claims:Q", title="claims", scale=alt.Scale(domain=[0, ticks[-1]]),
                 axis=alt.Axis(values=ticks, format="d"))


def _stats_lines(stats: dict | None, count: int, unit: str) -> list[str]:
    if not stats:
        return [f"{count} claims"]
    shown = {k: (f"{stats[k]:,.1f}" if unit == "ms" else f"{stats[k]:g}")
             for k in ("mean", "p50", "p90", "p99", "max")}
    return [f"{count} claims · mean {shown['mean']} {unit}",
            " · ".join(f"{k} {shown[k]}" for k in ("p50", "p90", "p99", "max"))]


def histogram(chart_id: str, title: str, values: list, stats: dict | None, axis: str,
              unit: str, whole: bool, empty: str) -> Chart:
    """How many claims fell in each bin of a latency: a bar per day when whole days span a
    short range, else bins of a round width (1, 2 or 5 times a power of ten)."""
    if not values:
        return Chart(chart_id, title, empty=empty)
    import altair as alt
    low, high = min(values), max(values)
    if whole and high - low <= 40:
        counts = Counter(values)
        days = list(range(low, high + 1))
        data = [{"value": d, "claims": counts.get(d, 0)} for d in days]
        every = max(1, math.ceil(len(days) / 12))
        bars = alt.Chart(alt.Data(values=data)).mark_bar(color=PALETTE[0]).encode(
            x=alt.X("value:O", title=axis, sort=days,
                    axis=alt.Axis(labelAngle=0, values=days[::every])))
    else:
        width = _nice((high - low) / 20 or 1)
        width = max(width, 1) if whole else width
        first = math.floor(low / width) * width
        counts = Counter(math.floor((v - first) / width) for v in values)
        data = [{"start": first + i * width, "end": first + (i + 1) * width, "claims": n}
                for i, n in sorted(counts.items())]
        bars = alt.Chart(alt.Data(values=data)).mark_bar(
            color=PALETTE[0], stroke="white", strokeWidth=1).encode(
            x=alt.X("start:Q", title=axis, scale=alt.Scale(zero=False)), x2="end:Q",
            y2=alt.datum(0))
    chart = bars.encode(y=_count_axis(max(d["claims"] for d in data))).properties(
        width=290, height=170, title=_title(title, _stats_lines(stats, len(values), unit)))
    return _render(chart_id, title, chart)


def _utc(day: date):
    import altair as alt
    return alt.DateTime(year=day.year, month=day.month, date=day.day, utc=True)


def _day_axis(first: date, last: date, padding: int = 0) -> dict:
    """A simulated-day x axis from ``first`` to ``last``: ISO dates, a tick per day over a
    short span (never one every few hours), the axis' own choice over a long one."""
    import altair as alt
    span = (last - first).days
    if span < 14:
        axis = alt.Axis(format="%Y-%m-%d", labelAngle=0,
                        values=[_utc(first + timedelta(days=i)) for i in range(span + 1)])
    else:
        axis = alt.Axis(format="%Y-%m-%d", labelAngle=0, tickCount=8)
    return {"title": "simulated day", "axis": axis, "scale": alt.Scale(
        type="utc", domain=[_utc(first), _utc(last)], nice=False, padding=padding)}


def over_time(run: Run) -> Chart:
    """The fund pay reconciled and paid back, cumulated over the simulated calendar."""
    chart_id, title = "over-time", "Fund pay reconciled and paid back over simulated time"
    series = (("reconciled by hub and regions", "reconciled_on"),
              ("paid back to hospitals", "paid_on"))
    daily: dict[str, Counter] = {name: Counter() for name, _ in series}
    counted: Counter = Counter()
    for claim in run.claims:
        for name, attr in series:
            day = getattr(claim, attr)
            if day is not None and claim.fund_pay is not None:
                daily[name][day] += claim.fund_pay
                counted[name] += 1
    days = sorted({d for c in daily.values() for d in c})
    if not days:
        return Chart(chart_id, title, empty="No claim was reconciled or paid back in this run.")
    import altair as alt
    rows = []
    for name, _ in series:
        total = 0
        for day in sorted(daily[name]):
            total += daily[name][day]
            rows.append({"day": day.isoformat(), "yuan": total / 100, "series": name})
        if daily[name] and max(daily[name]) < days[-1]:
            rows.append({"day": days[-1].isoformat(), "yuan": total / 100, "series": name})
    subtitle = (f"{counted[series[0][0]]} claims reconciled, {counted[series[1][0]]} paid "
                "back; cumulative fund pay by the simulated day it happened")
    chart = alt.Chart(alt.Data(values=rows)).mark_line(
        interpolate="step-after", point=alt.OverlayMarkDef(size=30), strokeWidth=2).encode(
        x=alt.X("day:T", **_day_axis(days[0], days[-1])),
        y=alt.Y("yuan:Q", title="fund pay, yuan (cumulative)",
                axis=alt.Axis(format=",.0f")),
        color=alt.Color("series:N", title=None, sort=[name for name, _ in series],
                        scale=alt.Scale(range=PALETTE[:2]),
                        legend=alt.Legend(orient="top", labelLimit=400)),
    ).properties(width=1040, height=220, title=_title(title, subtitle))
    return _render(chart_id, title, chart)


def _month(setlym: str) -> str:
    return f"{setlym[:4]}-{setlym[4:]}" if len(setlym) == 6 else setlym


def clearing_flows(run: Run) -> Chart:
    """What each region owes (payable) and is owed (receivable), month by month."""
    chart_id, title = "clearing", "Clearing flows between regions, by month"
    rows = [r for r in run.clearing if (r["payable"] or 0) or (r["receivable"] or 0)]
    if not rows:
        return Chart(chart_id, title, empty="No money was cleared between regions in this run.")
    import altair as alt
    volume: Counter = Counter()
    for r in rows:
        volume[r["region"]] += (r["payable"] or 0) + (r["receivable"] or 0)
    regions = [code for code, _ in volume.most_common(CLEARING_REGIONS)]
    shown = sorted(regions)
    subtitle = ["payable: owed by the region's fund for its insured treated elsewhere; "
                "receivable: owed to the region for the patients its hospitals treated"]
    if len(volume) > len(regions):
        subtitle.append(f"the {len(regions)} regions with the largest flows of {len(volume)}")
    flows = ("payable", "receivable")
    data = [{"month": _month(r["setlym"]), "region": r["region"], "flow": flow,
             "yuan": (r[flow] or 0) / 100}
            for r in run.clearing if r["region"] in regions for flow in flows]
    months = sorted({d["month"] for d in data})
    width = min(1000, max(220, 60 * len(shown)))      # per month
    chart = alt.Chart(alt.Data(values=data)).mark_bar().encode(
        x=alt.X("region:N", title="region", sort=shown, axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("flow:N", sort=list(flows)),
        y=alt.Y("yuan:Q", title="yuan", axis=alt.Axis(format=",.0f")),
        color=alt.Color("flow:N", title=None, sort=list(flows),
                        scale=alt.Scale(range=PALETTE[:2]), legend=alt.Legend(orient="top")),
    ).properties(width=width, height=200).facet(
        facet=alt.Facet("month:N", title=None, sort=months,
                        header=alt.Header(labelFontSize=13, labelFontWeight="bold")),
        columns=max(1, min(len(months), 1040 // (width + 40))),
    ).properties(title=_title(title, subtitle))
    return _render(chart_id, title, chart)


def ageing(run: Run) -> Chart:
    """Receivables by age: what hospitals advanced and were not yet paid back."""
    s = run.summary
    on = s.get("receivables_on")
    chart_id, title = "ageing", f"Receivables ageing on {on}" if on else "Receivables ageing"
    buckets = s.get("receivables_ageing_days") or {}
    amounts = {k: parse_fen(v) for k, v in buckets.items()}
    if not any(amounts.values()):
        return Chart(chart_id, title, empty=(f"No receivables were outstanding on {on}."
                                             if on else "The run reports no receivables."))
    import altair as alt
    data = [{"age": k, "yuan": v / 100, "label": _yuan(v)} for k, v in amounts.items()]
    base = alt.Chart(alt.Data(values=data)).encode(
        x=alt.X("age:N", title="days since admission", sort=list(amounts),
                axis=alt.Axis(labelAngle=0)),
        y=alt.Y("yuan:Q", title="yuan", axis=alt.Axis(format=",.0f")))
    chart = alt.layer(
        base.mark_bar(color=PALETTE[1], size=44),
        base.mark_text(dy=-7, fontSize=11, color="#333").encode(text="label:N"),
    ).properties(width=440, height=200, title=_title(
        title, f"fund pay hospitals had advanced and not been paid back: "
               f"{_yuan(sum(amounts.values()))} yuan"))
    return _render(chart_id, title, chart)


def timeline(run: Run) -> Chart:
    """Fault windows, the claims each fault struck and the reconciliation cases, by day."""
    chart_id, title = "timeline", "Reconciliation cases and faults on the simulated calendar"
    known = [c.settled_on for c in run.claims if c.settled_on is not None]
    known += [s["injected_on"] for f in run.faults for s in f["claims"] if s["injected_on"]]
    known += [c["stmt_date"] for c in run.cases if c["stmt_date"]]
    if not known or not (run.faults or run.cases):
        return Chart(chart_id, title, empty=(
            "No reconciliation cases and no faults in this run." if not (run.faults or run.cases)
            else "The run's files give no day for its faults or cases."))
    import altair as alt
    first, last = min(known), max(known)
    windows, marks = [], []
    for f in run.faults:
        lane = scrub(f["fault"])
        start, until = f["from"] or first, f["until"] or last
        windows.append({"lane": lane, "start": start.isoformat(),
                        "end": (until + timedelta(days=1)).isoformat(),
                        "what": f"fault: {f['kind']}"})
        for day, n in Counter(s["injected_on"] for s in f["claims"] if s["injected_on"]).items():
            marks.append({"lane": lane, "day": day.isoformat(), "claims": n,
                          "what": f"fault: {f['kind']}", "mark": "claim struck"})
    for (day, cause, state), n in Counter(
            (c["stmt_date"], c["cause"], c["state"]) for c in run.cases if c["stmt_date"]).items():
        marks.append({"lane": f"case {cause}", "day": day.isoformat(), "claims": n,
                      "what": f"case: {cause}", "mark": f"case {state}"})
    lanes = [w["lane"] for w in windows] + sorted({m["lane"] for m in marks} -
                                                  {w["lane"] for w in windows})
    drawn = [date.fromisoformat(w[k]) for w in windows for k in ("start", "end")]
    drawn += [date.fromisoformat(m["day"]) for m in marks]
    x = _day_axis(min(drawn), max(drawn), padding=14)
    y = alt.Y("lane:N", title=None, sort=lanes, axis=alt.Axis(labelLimit=260))
    color = alt.Color("what:N", title=None, scale=alt.Scale(range=PALETTE),
                      legend=alt.Legend(orient="top", columns=4))
    layers = []
    if windows:
        layers.append(alt.Chart(alt.Data(values=windows)).mark_bar(
            opacity=0.35, height=16, cornerRadius=2).encode(
            x=alt.X("start:T", **x), x2="end:T", y=y, color=color))
    if marks:
        layers.append(alt.Chart(alt.Data(values=marks)).mark_point(
            filled=True, opacity=0.9).encode(
            x=alt.X("day:T", **x), y=y, color=color,
            shape=alt.Shape("mark:N", title=None, legend=alt.Legend(orient="top")),
            size=alt.Size("claims:Q", title="claims", scale=alt.Scale(range=[40, 300]),
                          legend=None)))
    struck = sum(len(f["claims"]) for f in run.faults)
    subtitle = []
    if run.faults:
        subtitle.append(f"{len(run.faults)} faults, each a bar while it was active, a point "
                        f"on each day it struck claims ({struck} claims in all)")
    if run.cases:
        subtitle.append(f"{len(run.cases)} reconciliation cases, by statement day")
    chart = alt.layer(*layers).properties(width=900, height=max(60, 30 * len(lanes)),
                                          title=_title(title, "; ".join(subtitle)))
    return _render(chart_id, title, chart)


def charts(run: Run) -> dict[str, Chart]:
    s = run.summary
    claims = run.claims
    out = [
        histogram("settlement-latency", "Settlement latency",
                  [c.latency_ms for c in claims if c.latency_ms is not None],
                  s.get("settlement_latency_ms"), "wall milliseconds, claim submitted to "
                  "answered", "ms", False, "No claim was answered in this run."),
        histogram("reconciliation-days", "Three-party reconciliation latency",
                  [c.reconciliation_days for c in claims if c.reconciliation_days is not None],
                  s.get("reconciliation_latency_days"), "simulated days, settled to reconciled",
                  "days", True, "No claim was reconciled by hub and regions in this run."),
        histogram("payback-days", "Payback latency",
                  [c.payback_days for c in claims if c.payback_days is not None],
                  s.get("payback_days"), "simulated days, admitted to hospital paid back",
                  "days", True, "No hospital was paid back in this run."),
        over_time(run), clearing_flows(run), ageing(run), timeline(run),
    ]
    return {c.id: c for c in out}


# -- the page --------------------------------------------------------------------------

def _yuan(fen: int | None) -> str:
    if fen is None:
        return "-"
    sign = "-" if fen < 0 else ""
    whole, part = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{part:02d}"


def _money(text) -> str:
    return "-" if text in (None, "") else _yuan(parse_fen(text, allow_negative=True))


def _share(text) -> str:
    return "-" if text is None else f"{float(text) * 100:.2f} %"


def table(headers: list[str], rows: list[list], numeric: set[int] = frozenset(),
          caption: str | None = None, css: str = "", nowrap: set[int] = frozenset()) -> str:
    def cell(tag: str, i: int, value) -> str:
        cls = " ".join(c for c, on in (("num", i in numeric), ("nowrap", i in nowrap)) if on)
        attr = f' class="{cls}"' if cls else ""
        return f"<{tag}{attr}>{e(value)}</{tag}>"
    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>"
                   for r in rows)
    cap = f"<caption>{e(caption)}</caption>" if caption else ""
    return f'<table class="{css}">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def pairs(rows: list[tuple], caption: str) -> str:
    """A two-column table of names and figures."""
    body = "".join(f'<tr><th scope="row">{e(k)}</th><td class="num">{e(v)}</td></tr>'
                   for k, v in rows)
    return f'<table class="pairs"><caption>{e(caption)}</caption><tbody>{body}</tbody></table>'


def figure(chart: Chart) -> str:
    """A drawn chart, or its title and the sentence that stands in for it."""
    if chart.svg is None:
        return (f'<div class="chart-empty" data-chart="{e(chart.id)}">'
                f'<h3>{e(chart.title)}</h3><p class="no-data">{e(chart.empty)}</p></div>')
    return f'<figure class="chart" data-chart="{e(chart.id)}">{chart.svg}</figure>'


def explained(run: Run) -> set[str]:
    return {s["claim_id"] for f in run.faults for s in f["claims"]}


def verdict(run: Run) -> list[str]:
    """Why the run failed, as ``clearsim run`` decides it; empty when it passed."""
    s, why = run.summary, []
    faulted = explained(run)
    unexplained = [c for c in run.claims if not c.agreed and c.claim_id not in faulted]
    if unexplained:
        why.append(f"parties disagree on {len(unexplained)} claims no fault explains")
    if s.get("invariant_violations"):
        why.append(f"{len(s['invariant_violations'])} invariant violations")
    if run.delivery is not None and not run.delivery.get("ok", True):
        why.append("the delivery check failed")
    if s.get("unfinished"):
        why.append(f"{s['unfinished']} claims unfinished")
    return why


def summary_tables(run: Run) -> str:
    s = run.summary
    n = s["claims"] or 0

    def part(k):
        return f"{s[k]}  ({s[k] / n * 100:.1f} %)" if n else str(s[k])
    outcome = pairs([("direct settlement", part("direct")), ("manual reimbursement",
                     part("manual")), ("rejected", part("rejected")),
                     ("unfinished", part("unfinished")), ("claims", n)], "Claims by outcome")
    money = pairs([
        ("charges", _money(s["charges"])), ("fund pay", _money(s["fund_pay"])),
        ("personal pay", _money(s["personal_pay"])),
        ("outside the catalog (class C share)", _share(s.get("class_c_share"))),
        ("reimbursement ratio (fund / in scope)", _share(s.get("reimbursement_ratio"))),
        ("refused by audit", f"{_money(s.get('refused'))}  ({s.get('refusals', 0)})"),
        ("returned on appeal", _money(s.get("appeals_upheld"))),
        (f"receivables on {s.get('receivables_on', '-')}", _money(s.get("receivables"))),
    ], "Money, yuan")
    faulted = explained(run)
    disagree = [c for c in run.claims if not c.agreed]
    agreement = pairs([
        ("parties agree", f"{s['agreed']} of {n}"),
        ("disagree, explained by a fault", sum(c.claim_id in faulted for c in disagree)),
        ("disagree, unexplained", sum(c.claim_id not in faulted for c in disagree)),
        ("hospital ↔ platform differences resent",
         len(s.get("hospital_reconciliation_differences") or [])),
        ("reconciliation cases", len(run.cases)),
    ], "Agreement")
    d = run.delivery
    if d is None:
        delivery = pairs([("delivery.json", "not in the run directory")], "Delivery check")
    else:
        delivery = pairs([("result", "passed" if d.get("ok") else "FAILED"),
                          ("sent", d.get("sent")), ("handled", d.get("handled")),
                          ("refused with a code", d.get("refused"))]
                         + [(k, len(d.get(k) or [])) for k in
                            ("lost", "stuck", "doubled", "reordered", "unexplained")],
                         "Delivery check")
    problems = list(s.get("invariant_violations") or [])
    problems_html = ("".join(f"<li>{e(p)}</li>" for p in problems)
                     if problems else "<li class='none'>none: every invariant holds</li>")
    delivery_problems = "".join(f"<li>{e(p)}</li>" for p in s.get("delivery_problems") or [])
    invariants = (f'<div class="card"><h3>Invariant violations</h3><ul class="problems">'
                  f"{problems_html}</ul>"
                  + (f"<h3>Delivery problems</h3><ul class='problems'>{delivery_problems}</ul>"
                     if delivery_problems else "") + "</div>")
    messages = pairs([
        ("messages in", s.get("messages_in", "-")), ("messages out", s.get("messages_out", "-")),
        ("redeliveries absorbed", s.get("duplicates_absorbed", "-")),
        ("rejections", sum((s.get("rejections_by_code") or {}).values())),
    ] + [(f"  {code}", count) for code, count in
         sorted((s.get("rejections_by_code") or {}).items())], "Messages")
    cards = [outcome, money, agreement, delivery, messages]
    return ('<div class="cards">' + "".join(f'<div class="card">{c}</div>' for c in cards)
            + invariants + "</div>")


METRIC_NAMES = {
    "latency_ms": "settlement latency, wall ms",
    "reconciliation_latency_days": "three-party reconciliation, simulated days",
    "reconciliation_latency_ms": "three-party reconciliation, wall ms",
    "payback_days": "payback, simulated days",
    "payback_ms": "payback, wall ms",
}


def distributions_table(run: Run) -> str:
    if not run.distributions:
        return "<p class='no-data'>distributions.csv is not in the run directory.</p>"
    cols = ("count", "mean", "p50", "p90", "p99", "max")
    rows = [[METRIC_NAMES.get(r["metric"], r["metric"])] + [r.get(k) or "-" for k in cols]
            for r in run.distributions]
    return table(["latency"] + list(cols), rows, set(range(1, 7)), "Latency distributions",
                 "wide")


def clearing_table(run: Run) -> str:
    if not run.clearing:
        return ""
    keys = ("payable", "receivable", "net", "paid", "disbursed", "paid_to_hospitals")
    rows = [[_month(r["setlym"]), r["region"], r["state"]] + [_yuan(r[k]) for k in keys]
            for r in run.clearing]
    return table(["month", "region", "state", "payable", "receivable", "net", "paid in",
                  "disbursed", "to hospitals"], rows, set(range(3, 9)),
                 "Clearing statements, yuan", "wide")


def receivables_table(run: Run) -> str:
    by = run.summary.get("receivables_by_hospital") or {}
    if not by:
        return ""
    ordered = sorted(by.items(), key=lambda kv: -parse_fen(kv[1]))
    rows = [[h, _money(v)] for h, v in ordered[:15]]
    more = f" (the 15 largest of {len(by)})" if len(by) > 15 else ""
    return table(["hospital", "yuan"], rows, {1}, f"Receivables by hospital{more}")


def faults_table(run: Run) -> str:
    if not run.faults:
        return ""
    rows = []
    for f in run.faults:
        window = (f"{f['from'] or 'start'} to {f['until'] or 'end'}"
                  if f["from"] or f["until"] else "whole run")
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted((f.get("outcomes") or {}).items()))
        codes = ", ".join(f"{k} ×{v}" for k, v in sorted((f.get("codes") or {}).items()))
        rows.append([f["fault"], f["kind"], f.get("target"), window, f.get("claims_struck"),
                     f.get("noticed"), codes or "-", outcomes or "-",
                     _money(f.get("money_at_risk")), _money(f.get("money_finally_wrong"))])
    return table(["fault", "kind", "target", "active", "claims struck", "noticed", "codes",
                  "outcome", "at risk", "finally wrong"], rows, {4, 5, 8, 9},
                 "Faults", "wide", nowrap={0, 3})


def cases_table(run: Run) -> str:
    if not run.cases:
        return ""
    rows = [[c.get("case_id"), c["stmt_date"], c.get("admdvs"), c.get("claim_id"), c["cause"],
             c.get("owner"), c.get("repair"), c["state"]] for c in run.cases[:ATTENTION_ROWS]]
    more = (f" (the first {ATTENTION_ROWS} of {len(run.cases)})"
            if len(run.cases) > ATTENTION_ROWS else "")
    return table(["case", "statement day", "region", "claim", "cause", "owner", "repair",
                  "state"], rows, set(), f"Reconciliation cases{more}", "wide")


def attention_table(run: Run) -> str:
    listed = [c for c in run.claims if not c.agreed or c.status != "direct"]
    if not listed:
        return "<p class='none'>Every claim settled directly and every party agrees.</p>"
    rows = [[c.claim_id, c.status, _yuan(c.fund_pay), c.error_code or "-",
             "yes" if c.agreed else "NO",
             " ".join(f"{k.split('_')[0]}={v}" for k, v in c.parties.items()) or "-"]
            for c in listed[:ATTENTION_ROWS]]
    more = (f" (the first {ATTENTION_ROWS} of {len(listed)})"
            if len(listed) > ATTENTION_ROWS else "")
    return table(["claim", "status", "fund pay", "error", "agreed", "state held by each party"],
                 rows, {2}, f"Claims not settled directly, or not agreed{more}", "wide")


STYLE = """
:root { color-scheme: light; }
body { font-family: "DejaVu Sans", Verdana, sans-serif; margin: 0; color: #222;
       background: #f6f7f9; font-size: 14px; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 24px 40px; }
header h1 { font-size: 24px; margin: 0 0 4px; }
header p { margin: 0; color: #555; }
h2 { font-size: 18px; margin: 28px 0 10px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 14px; margin: 0 0 6px; }
.verdict { margin: 14px 0 4px; padding: 10px 14px; border-radius: 6px; font-weight: bold; }
.verdict.pass { background: #e3f3e1; border: 1px solid #9ccf95; color: #1f5a17; }
.verdict.fail { background: #fbe3e1; border: 1px solid #e59a93; color: #7a1a12; }
.cards { display: grid; grid-template-columns: repeat(3, 1fr); gap: 12px; align-items: start; }
.card, figure.chart, .chart-empty, table.wide { background: #fff; border: 1px solid #e1e3e6;
       border-radius: 6px; }
.card { padding: 10px 12px; }
table { border-collapse: collapse; width: 100%; }
caption { text-align: left; font-weight: bold; padding: 0 0 6px; }
table.wide { margin: 12px 0; }
table.wide caption { padding: 8px 10px 6px; }
th, td { padding: 3px 8px; text-align: left; border-bottom: 1px solid #eee; vertical-align: top; }
thead th { background: #f0f2f5; font-weight: 600; }
table.pairs th { font-weight: normal; color: #444; padding-left: 0; }
.nowrap { white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
ul.problems { margin: 0 0 8px; padding-left: 18px; }
ul.problems li { color: #7a1a12; }
.none { color: #1f5a17; }
ul.problems li.none { color: #1f5a17; }
figure.chart { margin: 0 0 12px; padding: 10px; overflow-x: auto; }
figure.chart svg { display: block; max-width: 100%; height: auto; }
.row { display: flex; gap: 12px; flex-wrap: wrap; align-items: flex-start; }
.row > * { flex: 1 1 0; min-width: 0; }
.chart-empty { padding: 12px 14px; margin: 0 0 12px; }
p.no-data { color: #555; margin: 0; }
footer { color: #777; margin-top: 30px; font-size: 12px; }
"""


def render(run: Run) -> str:
    s = run.summary
    drawn = charts(run)
    why = verdict(run)
    banner = ('<div class="verdict pass">Run passed: every claim finished, every party agrees '
              '(or a fault explains why not), every invariant holds and the delivery check '
              'passed.</div>' if not why else
              f'<div class="verdict fail">Run FAILED: {e("; ".join(why))}.</div>')
    scenario = Path(str(s.get("scenario", run.name))).name
    meta = (f"{s.get('scenario', '-')} · {s.get('bus', '-')} bus · {s.get('database', '-')} "
            f"databases · {s.get('nodes', '-')} nodes · {s['claims']} claims · wall time "
            f"{s.get('wall_seconds', '-')} s")
    if s.get("claims_per_second") is not None:
        meta += f" · {s['claims_per_second']:g} claims/s"
    missing = (f"<p class='no-data'>Not in the run directory: {e(', '.join(run.missing))}.</p>"
               if run.missing else "")
    sections = [
        f"<header><h1>Run report: {e(scenario)}</h1><p>{e(meta)}</p></header>",
        banner, missing,
        "<h2>Summary</h2>", summary_tables(run),
        "<h2>Latency distributions</h2>",
        '<div class="row">' + "".join(figure(drawn[k]) for k in (
            "settlement-latency", "reconciliation-days", "payback-days")) + "</div>",
        distributions_table(run),
        "<h2>Reconciliation and payback over simulated time</h2>", figure(drawn["over-time"]),
        "<h2>Clearing between regions</h2>", figure(drawn["clearing"]), clearing_table(run),
        "<h2>Receivables</h2>",
        f'<div class="row">{figure(drawn["ageing"])}<div>{receivables_table(run)}</div></div>',
        "<h2>Cases and faults</h2>", figure(drawn["timeline"]), faults_table(run),
        cases_table(run),
        "<h2>Claims to look at</h2>", attention_table(run),
        f"<footer>Written by <code>clearsim report</code> from the run directory "
        f"{e(run.name)}. Person ids are never shown in full.</footer>",
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"{GENERATOR}<title>clearsim run report: {e(scenario)}</title><style>{STYLE}</style></head>"
            f"<body><main>{''.join(sections)}</main></body></html>\n")


# Marks a page as this command's: only such a file is ever overwritten.
GENERATOR = '<meta name="generator" content="clearsim report">'


def _written_by_us(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return GENERATOR.encode() in f.read(4096)
    except OSError:
        return False


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the run's report (default RUN_DIR/report.html) and return its path."""
    run_dir = Path(run_dir)
    run = load(run_dir)
    try:
        page = render(run)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # load() checked what every page needs; the rest of a hand-edited file can still
        # hold a value of the wrong kind, which is the file's fault, not a crash.
        raise ClearsimError(ErrorCode.INVALID_INPUT,
                            f"a file of {run_dir} holds a value of the wrong kind: {exc!r}",
                            "RUN_DIR") from None
    out = Path(out) if out is not None else run_dir / "report.html"
    if out.is_dir() or (out.exists() and not _written_by_us(out)):
        raise ClearsimError(ErrorCode.OUTPUT_NOT_OURS,
                            f"{out} is {'a folder' if out.is_dir() else 'a file'} clearsim "
                            "report did not write: it is not overwritten (give --out another "
                            "path)", "--out")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ClearsimError(ErrorCode.INVALID_INPUT,
                            f"cannot write the report to {out}: {exc.strerror or exc}",
                            "--out") from None
    return out

"""`clearsim report`: a run's results as one HTML page that stands alone, opened in a real
browser (Debian's chromium, headless) that must draw every chart with nothing on its
console. On a laptop without chromium the browser test is skipped; under CI=true it fails.
"""

from __future__ import annotations

import csv
import json
import shutil
import struct
import subprocess
import sys
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

from clearsim.privacy import mask
from conftest import program
from testbed import cli
from testbed.html_report import scrub, write_report

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.toml"
FAULTY = ROOT / "scenarios" / "faults" / "identity.toml"
CHARTS = ("settlement-latency", "reconciliation-days", "payback-days", "over-time",
          "clearing", "ageing", "timeline")


class Page(HTMLParser):
    """Every element of a page as (tag, attributes, path of enclosing tags), and its text."""

    def __init__(self, text: str):
        super().__init__()
        self.elements: list[tuple[str, dict, tuple]] = []
        self.stack: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.style = ""
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append((tag, attrs, tuple(self.stack)))
        if tag not in ("meta", "br", "img", "input", "link", "hr"):
            self.stack.append((tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, dict(attrs), tuple(self.stack)))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        if self.stack and self.stack[-1][0] == "style":
            self.style += data
        self.text.append(data)

    def charts(self) -> dict[str, str]:
        """data-chart id -> "svg" (a drawn chart: an <svg> with marks inside the figure) or
        "sentence" (the sentence that stands in for a chart with nothing to draw)."""
        found: dict[str, str] = {}
        for tag, attrs, path in self.elements:
            if "data-chart" in attrs:
                found.setdefault(attrs["data-chart"], "sentence" if tag != "figure" else "")
            for outer, outer_attrs in path:
                if outer == "figure" and "data-chart" in outer_attrs and tag == "g" \
                        and (attrs.get("class") or "").startswith("mark-"):
                    found[outer_attrs["data-chart"]] = "svg"
        return found


def run(scenario: Path, out: Path) -> Path:
    assert cli.main(["run", str(scenario), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    return run(DEMO, tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def demo_report(demo_run) -> Path:
    return write_report(demo_run)


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory) -> Path:
    """The demo with two faults on identity cards (faults.json), and a reconciliation case
    (cases.csv) planted in the row format a run writes, so every chart has data."""
    out = run(FAULTY, tmp_path_factory.mktemp("faulty"))
    with (out / "cases.csv").open(newline="") as fh:
        columns = next(csv.reader(fh))
    with (out / "cases.csv").open("a", newline="") as fh:
        csv.DictWriter(fh, columns).writerow({
            "case_id": "RC20190302-360400-S110000-C-001", "stmt_date": "2019-03-02",
            "admdvs": "360400", "setl_id": "S110000-C-001", "claim_id": "C-001",
            "cause": "AMOUNT_DIFFERS", "owner": "region-360400",
            "repair": "reversal and resend", "state": "repaired",
            "resolution": "reversal and resend: the hub resent its record"})
    return out


def drawn(run_dir: Path) -> set[str]:
    """The charts a run's files give data for."""
    claims = list(csv.DictReader((run_dir / "claims.csv").open()))
    summary = json.loads((run_dir / "summary.json").read_text())
    cases = list(csv.DictReader((run_dir / "cases.csv").open()))
    want = set()
    for chart, column in (("settlement-latency", "latency_ms"),
                          ("reconciliation-days", "reconciliation_latency_days"),
                          ("payback-days", "payback_days")):
        if any(c[column] for c in claims):
            want.add(chart)
    if any(c["reconciled_on"] or c["paid_on"] for c in claims):
        want.add("over-time")
    if any(Decimal(r["payable"]) or Decimal(r["receivable"])
           for r in csv.DictReader((run_dir / "clearing.csv").open())):
        want.add("clearing")
    if any(Decimal(v) for v in summary["receivables_ageing_days"].values()):
        want.add("ageing")
    if cases or (run_dir / "faults.json").exists():
        want.add("timeline")
    return want


def yuan(text: str) -> str:
    return f"{Decimal(text):,.2f}"


def test_the_report_stands_alone(demo_report):
    """No script at all, and nothing fetched from anywhere: no src, href or CSS url that
    leaves the file."""
    page = Page(demo_report.read_text())
    assert [tag for tag, _, _ in page.elements if tag in ("script", "link", "iframe")] == []
    for tag, attrs, _ in page.elements:
        for name, value in attrs.items():
            if name.startswith("xmlns"):
                continue   # the SVG namespace names, never fetched
            assert "://" not in (value or "") and not (value or "").startswith("//"), \
                (tag, name, value)
    assert "@import" not in page.style and "url(" not in page.style


def test_the_report_shows_the_runs_figures(demo_run, demo_report):
    assert demo_report == demo_run / "report.html"
    page_text = demo_report.read_text()
    page = Page(page_text)
    text = " ".join(" ".join(page.text).split())
    summary = json.loads((demo_run / "summary.json").read_text())
    assert "Run passed" in text
    for key in ("charges", "fund_pay", "personal_pay", "receivables"):
        assert yuan(summary[key]) in text, key
    assert f"parties agree {summary['agreed']} of {summary['claims']}" in text
    assert f"direct settlement {summary['direct']} (" in text
    assert f"sent {summary['delivery']['sent']}" in text
    charts = page.charts()
    assert set(charts) == set(CHARTS)
    want = drawn(demo_run)
    assert {c for c, how in charts.items() if how == "svg"} == want
    assert {c for c, how in charts.items() if how == "sentence"} == set(CHARTS) - want
    assert "No reconciliation cases and no faults in this run." in text
    # The claims file's person ids appear nowhere.
    people = {c["person"]["id"] for c in json.loads(
        (ROOT / "scenarios" / "demo-claims.json").read_text())}
    assert people and not any(p in page_text for p in people)


def test_text_from_the_run_is_escaped_and_person_ids_masked(faulty_run, tmp_path):
    broken = tmp_path / "run"
    shutil.copytree(faulty_run, broken, ignore=shutil.ignore_patterns("db"))
    summary = json.loads((broken / "summary.json").read_text())
    summary["invariant_violations"] = [
        "claim C-001: person 'P-JJ-001' held <img src=x onerror=alert(1)> twice"]
    (broken / "summary.json").write_text(json.dumps(summary))
    faults = json.loads((broken / "faults.json").read_text())
    faults[0]["fault"] = "<script>alert('fault')</script>"
    (broken / "faults.json").write_text(json.dumps(faults))
    page_text = write_report(broken).read_text()
    assert "<script" not in page_text and "<img" not in page_text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page_text
    assert "&lt;script&gt;alert(&#x27;fault&#x27;)&lt;/script&gt;" in page_text
    assert "P-JJ-001" not in page_text and "person &#x27;****-001&#x27;" in page_text
    assert "Run FAILED" in page_text


def test_person_ids_and_names_are_masked_in_any_text():
    assert mask("P360400-000123") == "**********0123"
    assert mask("张三") == "**"
    assert scrub("person P-JJ-003 has no valid filing") == "person ****-003 has no valid filing"
    assert scrub("psn_no=P-JJ-001, psn_name: 王小明") == "psn_no=****-001, psn_name: ***"
    # Words that merely name the field stay as they are.
    assert scrub("jiujiang-card-person-id (field=person_id)") == \
        "jiujiang-card-person-id (field=person_id)"


def chromium() -> str:
    return program("chromium", "chromium-browser", package="chromium")


def browse(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless chromium that can reach no host (the page must draw from the file alone),
    logging its console to stderr."""
    return subprocess.run(
        [browser, "--headless=new", "--disable-gpu", "--no-sandbox", "--no-first-run",
         f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0", *args],
        capture_output=True, text=True, timeout=60)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def blank_screenshot(tmp_path_factory) -> int:
    """The size of a screenshot of a page that paints nothing."""
    browser, tmp = chromium(), tmp_path_factory.mktemp("blank")
    (tmp / "blank.html").write_text("<!DOCTYPE html><html><body></body></html>")
    done = browse(browser, tmp / "profile", f"--screenshot={tmp / 'blank.png'}",
                  "--window-size=1280,4000", (tmp / "blank.html").as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    return (tmp / "blank.png").stat().st_size


@pytest.mark.parametrize("which", ["demo_run", "faulty_run"])
def test_the_report_renders_in_chromium(which, request, blank_screenshot, tmp_path):
    browser = chromium()
    run_dir = request.getfixturevalue(which)
    report = write_report(run_dir, tmp_path / "report.html")
    url = report.resolve().as_uri()

    done = browse(browser, tmp_path / "profile", "--dump-dom", url)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines()
               if ":CONSOLE" in line or "Uncaught" in line]
    assert console == []
    charts = Page(done.stdout).charts()
    assert set(charts) == set(CHARTS)
    assert {c for c, how in charts.items() if how == "svg"} == drawn(run_dir)
    if which == "faulty_run":
        assert set(charts.values()) == {"svg"}

    shot = tmp_path / "report.png"
    done = browse(browser, tmp_path / "profile", f"--screenshot={shot}",
                  "--window-size=1280,4000", url)
    assert done.returncode == 0, done.stderr[-2000:]
    assert png_size(shot) == (1280, 4000)
    assert shot.stat().st_size > 5 * blank_screenshot   # it painted far more than nothing


def clearsim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "testbed.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_the_command_writes_where_it_is_told(demo_run, tmp_path):
    out = tmp_path / "elsewhere" / "run.html"
    done = clearsim("report", str(demo_run), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stdout
    assert out.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("damage", ["missing", "empty", "summary", "claims"])
def test_a_broken_run_directory_is_one_line_and_status_2(damage, demo_run, tmp_path):
    run_dir = tmp_path / "run"
    if damage != "missing":
        run_dir.mkdir()
    if damage in ("summary", "claims"):
        for name in ("summary.json", "claims.csv", "clearing.csv"):
            shutil.copy(demo_run / name, run_dir / name)
    if damage == "summary":
        (run_dir / "summary.json").write_text('{"claims": 12, "charges": ')
    if damage == "claims":
        text = (run_dir / "claims.csv").read_text()
        (run_dir / "claims.csv").write_text(text.replace("7950.00", "7950.0.0", 1))
    done = clearsim("report", str(run_dir))
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("clearsim: INVALID_INPUT"), done.stderr
    expected = {"missing": "does not exist", "empty": "has no summary.json",
                "summary": "summary.json cannot be read", "claims": "claims.csv cannot be read"}
    assert expected[damage] in lines[0]


def test_a_file_the_report_did_not_write_is_not_overwritten(tmp_path, demo_run):
    precious = tmp_path / "scenario.toml"
    precious.write_text("[sim]\n")
    done = subprocess.run([sys.executable, "-m", "testbed.cli", "report", str(demo_run),
                           "--out", str(precious)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "OUTPUT_NOT_OURS" in done.stderr, done.stderr
    assert precious.read_text() == "[sim]\n"
    again = tmp_path / "page.html"           # a page it wrote is written again
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "testbed.cli", "report", str(demo_run),
                               "--out", str(again)], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr

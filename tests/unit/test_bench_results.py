"""The benchmark suite's results: RESULTS.md's shape, rendered from figures, and one cheap
benchmark run through ``benchmarks/run`` end to end. No timing is asserted: the figures
are whatever the machine gives."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import results  # noqa: E402
from figures import Figure  # noqa: E402

HEAD = {"date": "2019-04-01 08:00 UTC", "command": "benchmarks/run", "quick": False,
        "machine": {"cores": 2, "memory_gib": 24.0, "python": "3.11.7", "platform": "Linux"},
        "kafka": {"version": "Apache Kafka 3.9.1", "how": "one KRaft broker the run started"},
        "postgres": None,
        "benchmarks": {"floor.py": {"seconds": 95.0, "date": "2019-04-01 08:00 UTC"},
                       "e2e.py": {"seconds": 400.0, "date": "2019-04-01 08:02 UTC"}}}


def fake_figures() -> list[Figure]:
    return [
        Figure("floor", "per-message floor", 9000.0, "msgs/s"),
        Figure("end to end (in-process)", "claims/s sustained", 30.0, "claims/s", 300,
               floor=450.0, detail={"headline": True, "why": "A claim costs 20 messages."}),
        Figure("end to end (in-process)", "settlement round trip p99", 150.0, "ms", 200,
               higher_is_better=False),
        Figure("end to end (Kafka, SQLite)", "claims/s sustained", None, "claims/s", 250,
               note="no Kafka broker"),
        Figure("national month", "month: wall time", 45.0, "min", 20, higher_is_better=False,
               detail={"headline": True}),
    ]


def table_rows(text: str, section: str) -> list[list[str]]:
    part = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")]
            for line in part.splitlines() if line.startswith("| ")][2:]


def test_results_md_has_a_head_a_headline_and_a_table_per_section():
    text = results.render(HEAD, fake_figures())
    assert text.startswith("# Benchmark results\n")
    for needed in ("| date | 2019-04-01 08:00 UTC |", "| command | `benchmarks/run` |",
                   "2 cores, 24.0 GiB", "| Python | 3.11.7 |",
                   "Apache Kafka 3.9.1", "| PostgreSQL | none |", "| floor.py | 1 min 35 s |",
                   "## Headline"):
        assert needed in text
    sections = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert sections == ["Headline", "floor", "end to end (in-process)",
                        "end to end (Kafka, SQLite)", "national month"]
    header = "| figure | value | unit | target | vs target | vs floor | note |"
    assert text.count(header) == 4
    rate = table_rows(text, "end to end (in-process)")[0]
    assert rate[:6] == ["claims/s sustained", "30", "claims/s", "≥ 300", "0.10x missed",
                        "6.7% of 450"]
    latency = table_rows(text, "end to end (in-process)")[1]
    assert latency[3:5] == ["≤ 200", "1.33x met"]


def test_a_missed_target_says_by_how_much_and_leaves_a_place_for_the_profile():
    text = results.render(HEAD, fake_figures())
    part = text.split("## end to end (in-process)", 1)[1].split("\n## ", 1)[0]
    assert "### What stands in the way" in part
    assert "10.0 times short" in part and "A claim costs 20 messages." in part
    assert "<!-- profile: end to end (in-process) / claims/s sustained -->" in part
    assert results.PROFILE_TODO in part
    assert "settlement round trip p99**" not in part          # met: nothing to explain
    month = text.split("## national month", 1)[1]
    assert "2.2 times over" in month
    kafka = text.split("## end to end (Kafka, SQLite)", 1)[1].split("\n## ", 1)[0]
    assert "Not measured in this run: **claims/s sustained** (no Kafka broker)" in kafka


def test_what_is_written_into_a_profile_place_is_kept_when_rendered_again():
    first = results.render(HEAD, fake_figures())
    edited = first.replace(f"Profile: {results.PROFILE_TODO}",
                           "Profile: 55 % of samples in SQLite execute.", 1)
    again = results.render(HEAD, fake_figures(), previous=edited)
    assert "Profile: 55 % of samples in SQLite execute." in again
    assert again.count(results.PROFILE_TODO) == first.count(results.PROFILE_TODO) - 1


def test_results_json_renders_the_same_markdown(tmp_path):
    path = tmp_path / "results.json"
    results.save(path, HEAD, fake_figures())
    head, figures = results.load(path)
    assert figures == fake_figures()
    assert results.render(head, figures) == results.render(HEAD, fake_figures())


def test_benchmarks_run_writes_results_for_a_cheap_benchmark(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run"), "--quick",
                           "--only", "engine", "--kafka", "none", "--postgres", "none",
                           "--out", str(tmp_path), "--workdir", str(tmp_path / "work")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    text = (tmp_path / "RESULTS.md").read_text()
    assert "**Quick run**" in text
    assert "| command | `benchmarks/run --quick --only engine" in text
    row = table_rows(text, "settlement engine")[0]
    assert row[0] == "settle engine, one core" and row[2] == "claims/s"
    assert float(row[1].replace(",", "")) > 0
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["run"]["benchmarks"]["settle_engine.py"]["seconds"] >= 0
    assert [f["section"] for f in data["figures"]] == ["settlement engine"]


def test_a_count_that_must_be_zero_is_met_at_zero_and_missed_above():
    from figures import Figure
    clean = Figure("crash soak", "messages lost", 0, "messages", 0, higher_is_better=False)
    lost = Figure("crash soak", "messages doubled", 2, "messages", 0, higher_is_better=False)
    assert clean.met() is True and lost.met() is False
    text = results.render(HEAD, [clean, lost])
    rows = table_rows(text, "crash soak")
    assert rows[0][4] == "met" and rows[1][4] == "missed"
    assert "2.00 messages where there must be none" in text

"""How `clearsim run` behaves for a person at a terminal or a script: quiet when asked,
no progress drawn into a pipe, Ctrl-C stops it and says where its partial results are."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.toml"


def test_quiet_prints_nothing_and_the_exit_status_says_it_went_well(tmp_path):
    done = subprocess.run([sys.executable, "-m", "testbed.cli", "run", str(DEMO), "--quiet",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
    assert (tmp_path / "summary.json").exists()


def test_a_piped_run_draws_no_progress(tmp_path):
    done = subprocess.run([sys.executable, "-m", "testbed.cli", "run", str(DEMO), "--workload",
                           "--days", "40", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""           # the progress line goes to a terminal only
    assert done.stdout.startswith("clearsim run:")


def test_ctrl_c_stops_the_run_and_says_where_its_partial_results_are(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "testbed.cli", "run", str(DEMO),
                                "--workload", "--days", "400", "--rate", "20",
                                "--out", str(tmp_path)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "db").glob("hospitals-*.db")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)                     # claims in flight
    process.send_signal(signal.SIGINT)
    interrupted = time.monotonic()
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert time.monotonic() - interrupted < 30
    assert "interrupted while" in err and str(tmp_path / "db") in err
    assert "Traceback" not in err
    assert not (tmp_path / "summary.json").exists()

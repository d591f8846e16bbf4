"""The README's calibration table is what `clearsim run scenarios/beijing-2019.toml` prints."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_calibrated_run_reproduces_the_readme_figures(tmp_path):
    done = subprocess.run([sys.executable, "-m", "testbed.cli", "run",
                           "scenarios/beijing-2019.toml", "--out", str(tmp_path), "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| figure (DOMAIN.md §7"):]

    def row(label: str) -> str:
        return re.search(rf"\| {re.escape(label)} \| [^|]+ \| ([^|]+) \|", table).group(1)

    assert row("mean three-party reconciliation time").startswith(
        f"{summary['reconciliation_latency_days']['mean']} days")
    assert row("mean payback time").startswith(f"{summary['payback_days']['mean']} days")
    share = float(summary["class_c_share"]) * 100
    assert row("share of charges outside the catalog").strip() == f"{share:.2f} %"
    ratio = float(summary["reimbursement_ratio"]) * 100
    assert row("reimbursement ratio").strip() == f"{ratio:.2f} %"
    assert f"({summary['claims']} admissions" in readme
    assert summary["invariant_violations"] == [] and summary["agreed"] == summary["claims"]

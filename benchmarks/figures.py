"""What every benchmark reports: named figures with their unit, target and floor.

A benchmark module exposes ``measure(env) -> list[Figure]`` (``env`` says which broker and
PostgreSQL server this run has) and prints its figures when run alone; ``benchmarks/run``
collects every module's figures in one run and rewrites RESULTS.md from them.

A figure's ``ratio`` is what RESULTS.md prints beside it: the figure over its target (above 1
meets a "higher is better" target) and, where a floor was measured in the same run, the
figure over that floor (how much of what the machine can do clearsim achieves).
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Env:
    """What a benchmark run has at hand. ``kafka``: bootstrap of a running broker (None:
    none could be started, and the figures that need one say so); ``kafka_libs``: the
    broker's jars; ``postgres``: a server URL; ``quick``: smaller sizes, for a smoke run."""
    kafka: str | None = None
    kafka_libs: Path | None = None
    postgres: str | None = None
    quick: bool = False
    workdir: Path = Path("out/bench")
    broker: object | None = None        # the KafkaBroker itself (tools that need its ports)


@dataclass
class Figure:
    section: str                 # "floor", "end to end (in-process)", "scaling", ...
    name: str                    # "codec encode", "claims/s sustained", ...
    value: float | None          # None: not measured (``note`` says why)
    unit: str                    # "msgs/s", "claims/s", "ms", "MiB", "s"
    target: float | None = None
    higher_is_better: bool = True
    floor: float | None = None   # the machine's floor for the same quantity, same run
    note: str = ""
    detail: dict = field(default_factory=dict)

    def target_ratio(self) -> float | None:
        if self.value is None or not self.target:
            return None
        return (self.value / self.target if self.higher_is_better
                else self.target / self.value if self.value else None)

    def floor_ratio(self) -> float | None:
        if self.value is None or not self.floor:
            return None
        return self.value / self.floor

    def met(self) -> bool | None:
        if self.target == 0 and not self.higher_is_better and self.value is not None:
            return self.value <= 0          # a count that must be zero: no ratio to it
        ratio = self.target_ratio()
        return None if ratio is None else ratio >= 1


def machine() -> dict:
    """Cores, memory and versions, for the head of RESULTS.md."""
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"cores": os.cpu_count(), "memory_gib": memory,
            "python": platform.python_version(), "platform": platform.platform()}


def dump(figures: list[Figure], path: Path) -> None:
    path.write_text(json.dumps([asdict(f) for f in figures], indent=2, default=str) + "\n")


def show(figures: list[Figure]) -> None:
    """One line per figure, for a benchmark run alone."""
    for f in figures:
        value = "n/a" if f.value is None else f"{f.value:,.1f}"
        extra = []
        if f.target is not None:
            ratio = f.target_ratio()
            extra.append(f"target {'≥' if f.higher_is_better else '≤'} {f.target:,.0f}"
                         + (f" ({ratio:.2f}x)" if ratio is not None else ""))
        if f.floor_ratio() is not None:
            extra.append(f"{f.floor_ratio():.0%} of floor {f.floor:,.0f}")
        if f.note:
            extra.append(f.note)
        print(f"{f.section:>28} | {f.name:<44} {value:>12} {f.unit:<9} {'; '.join(extra)}")

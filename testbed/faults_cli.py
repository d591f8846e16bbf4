"""``clearsim faults``: every fault kind a run can inject, its parameters and an example."""

from __future__ import annotations

import json
import sys

from clearsim.errors import ErrorCode
from clearsim.faults import _COMMON, FAMILIES, KINDS
from clearsim.sim.files import print_out


def add_parser(sub) -> None:
    p = sub.add_parser(
        "faults", help="list the faults `clearsim run` can inject",
        description="Every fault kind, by family (DOMAIN.md §6): what it does, who notices "
                    "it and with which code, its parameters with their defaults, and an "
                    "example for --fault (or the same keys in a [[fault]] table).")
    p.add_argument("kind", nargs="?", help="show only this kind")
    p.add_argument("--json", action="store_true", help="print the catalogue as JSON")
    p.set_defaults(handler=main)


def _default(param) -> str:
    if param.required:
        return "required"
    if param.default is None:
        return "-"
    if isinstance(param.default, bool):
        return str(param.default).lower()
    return str(param.default)


def main(args) -> int:
    kinds = [k for k in KINDS.values() if args.kind in (None, k.name)]
    if not kinds:
        print(f"clearsim: {ErrorCode.INVALID_INPUT.value} (kind): no fault kind "
              f"{args.kind[:40]!r} (kinds: {', '.join(KINDS)})", file=sys.stderr)
        return 2
    if args.json:
        print_out(json.dumps([{
            "kind": k.name, "family": k.family, "summary": k.summary, "target": k.target,
            "detected_by": k.detected_by, "example": k.example,
            "params": [{"name": p.name, "type": p.kind, "default": _default(p),
                        "choices": list(p.choices), "help": p.help}
                       for p in (*k.params, *_COMMON)]} for k in kinds], indent=2))
        return 0
    lines = []
    for family in FAMILIES:
        members = [k for k in kinds if k.family == family]
        if not members:
            continue
        lines.append(f"== {family}")
        for k in members:
            lines.append(f"\n  {k.name}: {k.summary}")
            lines.append(f"    noticed by: {k.detected_by}")
            for p in k.params:
                choices = f" ({'|'.join(p.choices)})" if p.choices else ""
                lines.append(f"    {p.name:<13} {_default(p):<15} {p.help}{choices}")
            lines.append(f"    example:  --fault {k.example}")
        lines.append("")
    lines.append("Every kind also takes: "
                 + "; ".join(f"{p.name} ({_default(p)}): {p.help}" for p in _COMMON))
    print_out("\n".join(lines))
    return 0

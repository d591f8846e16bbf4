"""English inside: no national field name in a node package (STYLE.md habit 6).

Only the schemas, the codec and ``clearsim/wire.py`` speak the national interface; the
handlers, tables and read models use the names of ``wire.ENGLISH``'s right side.
"""

import io
import tokenize
from pathlib import Path

import pytest

from clearsim import wire

ROOT = Path(__file__).resolve().parents[2]
# Every node package.
INSIDE = sorted(p for package in ("hub", "region_node", "hospital_node")
                for p in (ROOT / package).glob("*.py"))


def national_names_in(path: Path) -> list[tuple[int, str]]:
    found = []
    with path.open("rb") as fh:
        for token in tokenize.tokenize(fh.readline):
            if token.type == tokenize.NAME and token.string in wire.ENGLISH:
                found.append((token.start[0], token.string))
            elif token.type == tokenize.STRING:
                text = token.string.strip("rbuRBUfF").strip("'\"")
                if text in wire.ENGLISH:
                    found.append((token.start[0], text))
    return found


@pytest.mark.parametrize("path", INSIDE, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_national_field_name_inside(path):
    assert national_names_in(path) == []

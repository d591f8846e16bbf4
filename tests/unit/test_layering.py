"""The packages' arrows run one way: testbed -> node packages -> clearsim.

The core imports no node package and not the driver; the driver asks the nodes' read
models (``queries``) and never imports their tables.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NODES = ("hub", "region_node", "hospital_node")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module an ``import`` or ``from`` statement names, at any depth, with its line;
    ``from package import module`` also counts as importing ``package.module``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def offending(package: str, forbidden) -> list[str]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no source files under {package}/"
    return [f"{path.relative_to(ROOT)}:{line}: imports {name}"
            for path in files for line, name in imported_modules(path)
            if any(name == f or name.startswith(f + ".") for f in forbidden)]


def test_the_core_imports_no_node_package_and_not_the_driver():
    assert offending("clearsim", NODES + ("testbed",)) == []


def test_the_driver_does_not_read_the_nodes_tables():
    assert offending("testbed", [f"{node}.tables" for node in NODES]
                     + ["clearsim.db.rejections"]) == []


def test_the_checks_see_a_forbidden_import(tmp_path):
    source = tmp_path / "sample.py"
    source.write_text("import hub.tables\nfrom region_node import tables\n"
                      "def later():\n    from hospital_node.tables import claims\n")
    names = [name for _, name in imported_modules(source)]
    assert "hub.tables" in names and "region_node.tables" in names
    assert "hospital_node.tables.claims" in names

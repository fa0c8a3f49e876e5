"""The package's layout: data flow one way, from products to catalog to outputs.

Every module of ``src/deconfetti`` stands somewhere in `FLOW`; a module may import only
modules that stand before it (run-time imports anywhere in the file, not those under
``TYPE_CHECKING``). The package's ``__init__`` imports nothing eagerly but its version.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "deconfetti"

#: the flow, first to last; modules on one line may import each other in the order given
FLOW = [
    "errors", "config", "files", "tables",
    "io.base", "io.discover", "io.casa", "io.fits", "io.memory", "io.products", "io",
    "stream", "checkpoint",
    "features", "noise", "candidates", "measure", "datatest", "classify", "catalog",
    "pipeline",
    "repair.log", "repair.select", "repair.consistency", "repair.solve", "repair.write",
    "repair",
    "cutout", "figures", "drawing", "report",
    "outputs.regions", "outputs.survey", "outputs",
    "workflow", "cli",
    "simulate",
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path) -> set[str]:
    """Package modules that ``name`` imports at run time."""
    tree = ast.parse(path.read_text())
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for n in ast.walk(node)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("deconfetti"):
                target = node.module[len("deconfetti."):] if "." in node.module else ""
            else:
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}" if target else alias.name
                out.add(full if full in _modules() else target)
        elif isinstance(node, ast.Import):
            out |= {a.name[len("deconfetti."):] for a in node.names
                    if a.name.startswith("deconfetti.")}
    return {m for m in out if m != name}


def test_every_module_has_a_place_in_the_flow():
    assert sorted(set(_modules()) - {""}) == sorted(FLOW)


@pytest.mark.parametrize("name", FLOW)
def test_imports_follow_the_flow(name):
    later = [m for m in _imports(name, _modules()[name]) if m and FLOW.index(m) > FLOW.index(name)]
    assert not later, f"{name} imports {later}, which stand later in the flow"


def test_the_package_imports_nothing_eagerly():
    assert _imports("", SRC / "__init__.py") == set()
    code = ("import sys, deconfetti, deconfetti.cli\n"
            "heavy = [m for m in ('numpy', 'astropy', 'scipy', 'matplotlib', 'dask', 'casacore')"
            " if m in sys.modules]\nprint(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_scan_without_figures_draws_nothing(tmp_path):
    """matplotlib's figures (half a second of imports) are loaded only to draw."""
    code = ("import sys, deconfetti\nfrom deconfetti.workflow import scan_to_folder\n"
            f"scan_to_folder(deconfetti.example_path(), {str(tmp_path / 'scan')!r}, figures=0)\n"
            "print('matplotlib.figure' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_scan_with_figures_draws_them_in_its_drawing_process(tmp_path):
    """The figures are laid out and drawn by a process forked before the scan: the
    scanning process itself loads no matplotlib, and writes every figure."""
    code = ("import sys, deconfetti\nfrom deconfetti.workflow import scan_to_folder\n"
            f"scan_to_folder(deconfetti.example_path(), {str(tmp_path / 'scan')!r}, figures=4)\n"
            "print('matplotlib.figure' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert len(list((tmp_path / "scan" / "figures").glob("*.png"))) == 4 * 5

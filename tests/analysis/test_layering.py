"""Layering and public surface of smpmem.analysis (DESIGN.md §1): only the event catalog and run files."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import smpmem.analysis as analysis

PKG = Path(analysis.__file__).parent
ALLOWED = ("smpmem.trace", "smpmem.analysis")


def test_imports_only_the_catalog() -> None:
    """No module of smpmem.analysis imports smpmem outside smpmem.trace (the model stays out)."""
    bad = []
    for path in sorted(PKG.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level == 2:  # from ..x import
                    mod = f"smpmem.{node.module}" if node.module else "smpmem"
                elif node.level == 0:
                    mod = node.module or ""
                else:
                    continue
                names = [mod]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for mod in names:
                if mod.startswith("smpmem") and not mod.startswith(ALLOWED):
                    bad.append(f"{path.name}: {mod}")
    assert bad == []


def test_analysing_loads_no_model_module(tmp_path: Path) -> None:
    """Analysing and exporting a run in a fresh interpreter loads no smpmem module but trace and analysis."""
    here = Path(__file__).parent
    code = f"""
import sys, warnings
sys.path.insert(0, {str(here)!r})
from rundirs import small_run
from smpmem.analysis import analyze, load
from smpmem.analysis.export import export
from smpmem.analysis.procfs import write_proc_tree
d = small_run(__import__("pathlib").Path({str(tmp_path / "r")!r}))
analyze(d)
for f in ("ftrace", "perfetto", "csv"):
    export(load(d), f)
write_proc_tree(load(d), d / "procfs")
print(sorted(m for m in sys.modules if m.startswith("smpmem") and not m.startswith({ALLOWED!r}) and m != "smpmem"))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_surface() -> None:
    """smpmem.analysis re-exports exactly its API, each defined in a private module (trio's export test)."""
    public = sorted(n for n in dir(analysis) if not n.startswith("_") and not isinstance(
        getattr(analysis, n), type(analysis)))
    assert public == ["Damage", "DamagedLogWarning", "Report", "Run", "RunDirError", "analyze", "load"]
    for name in ("Damage", "DamagedLogWarning", "Report", "Run", "RunDirError", "analyze", "load"):
        assert getattr(analysis, name).__module__.startswith("smpmem.analysis.")

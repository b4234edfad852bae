"""The public surface of smpmem.scenario: re-exports only (smpmem/scenario/__init__.py)."""

import ast
from pathlib import Path

import smpmem.scenario as scenario

INIT = Path(scenario.__file__)


class TestExports:
    def test_init_only_reexports(self):
        """__init__.py defines nothing itself: every statement is a docstring or an import from a private module."""
        tree = ast.parse(INIT.read_text())
        for node in tree.body:
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue
            assert isinstance(node, ast.ImportFrom), ast.dump(node)
            assert node.level == 1 and node.module.startswith("_"), node.module
            for alias in node.names:
                assert alias.asname == alias.name, f"re-export {alias.name} as itself"

    def test_public_names_resolve(self):
        """Every public name comes from a private module of the package."""
        public = [n for n in dir(scenario) if not n.startswith("_")]
        for name in ("load_scenario", "parse_scenario", "Scenario", "ScenarioError", "Problem", "Step"):
            assert name in public
        for name in public:
            obj = getattr(scenario, name)
            mod = getattr(obj, "__module__", None)
            if mod is not None and mod.startswith("smpmem.scenario"):
                assert mod.split(".")[-1].startswith("_") or mod.endswith(".docs"), (name, mod)

    def test_error_type(self):
        """ScenarioError is an Exception (the CLI catches it and exits 2)."""
        assert issubclass(scenario.ScenarioError, Exception)

"""The generated reference docs/scenarios.md (smpmem/scenario/docs.py)."""

import subprocess
import sys
from pathlib import Path

import pytest

from smpmem.scenario import STEP_TYPES, parse_scenario
from smpmem.scenario.docs import EXAMPLE, REGENERATE, SECTIONS, render_docs

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "scenarios.md"


class TestDocs:
    def test_file_matches_schema(self):
        """docs/scenarios.md is exactly what render_docs() generates from the schema."""
        assert DOC.exists(), f"docs/scenarios.md is missing; generate it with: {REGENERATE}"
        assert DOC.read_text(encoding="utf-8") == render_docs(), (
            f"docs/scenarios.md is out of date with the scenario schema; regenerate it with: {REGENERATE}")

    def test_module_is_runnable(self):
        """`python -m smpmem.scenario.docs` prints render_docs() byte for byte."""
        out = subprocess.run([sys.executable, "-m", "smpmem.scenario.docs"], cwd=ROOT, capture_output=True,
                             check=True)
        assert out.stdout.decode("utf-8") == render_docs()

    def test_example_is_valid(self):
        """The example scenario shown in the docs loads."""
        sc = parse_scenario(EXAMPLE, "example.toml")
        assert sc.name == "reclaim-demo" and len(sc.process) == 2

    @pytest.mark.parametrize("model", [m for _, m, _ in SECTIONS] + list(STEP_TYPES.values()),
                             ids=lambda m: m.__name__)
    def test_every_key_documented(self, model):
        """Every key of every section and step has a meaning, and appears in the reference."""
        text = render_docs()
        for name, f in model.model_fields.items():
            if name == "op":
                continue
            assert f.description, f"{model.__name__}.{name} has no description"
            assert f"| `{name}` |" in text

    def test_every_step_has_a_section(self):
        """Every op has its own heading in the step reference."""
        text = render_docs()
        for op in STEP_TYPES:
            assert f"### `{op}`" in text

"""The built-in program registry (smpmem/workload/_builtins.py) and its generated reference docs/programs.md."""

import subprocess
import sys
from pathlib import Path

import pytest

from smpmem.scenario import ScenarioError, parse_scenario
from smpmem.workload._builtins import BUILTINS, BuiltinError, UnknownBuiltin, builtin_params, builtin_program
from smpmem.workload.docs import REGENERATE, render_docs
from smpmem.workload.wis import WILL_IT_SCALE

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "programs.md"


class TestRegistry:
    @pytest.mark.parametrize("name", sorted(set(BUILTINS) - {"replay"}))
    def test_expands_with_defaults(self, name: str) -> None:
        """Every built-in (but replay, which needs a trace) expands with its defaults into valid steps."""
        steps = builtin_program(name, {})
        assert steps and all(hasattr(s, "op") for s in steps)

    @pytest.mark.parametrize("name", WILL_IT_SCALE)
    def test_wis_params(self, name: str) -> None:
        """Every will-it-scale built-in takes mode, tasks, size and iterations (and file when file-backed)."""
        params = builtin_params(name)
        assert {"mode", "tasks", "size", "iterations"} <= set(params)
        assert ("file" in params) == (name in ("page_fault2", "page_fault3", "mmap2", "tlb_flush1", "tlb_flush3"))

    def test_page_fault1_is_the_c_loop(self) -> None:
        """page_fault1's task is will-it-scale's loop: mmap, write each page counting one op, munmap."""
        [fork] = builtin_program("page_fault1", {"size": "16KiB", "iterations": 3})
        start, loop, end = fork.program
        assert (start.op, start.n, loop.op, loop.count, end.op, end.done) == ("ops", 0, "loop", 3, "ops", True)
        mmap, each, munmap = loop.body
        assert (mmap.op, mmap.size, mmap.flags, munmap.op) == ("mmap", 16384, "private|anonymous", "munmap")
        assert (each.op, each.stride) == ("for_each", 4096)
        assert [(s.op, getattr(s, "write", None)) for s in each.body] == [("touch", True), ("ops", None)]

    def test_modes(self) -> None:
        """processes mode forks a child per task; threads mode starts the tasks as threads."""
        assert [s.op for s in builtin_program("mmap1", {"tasks": 3})] == ["fork"] * 3
        [spawn] = builtin_program("mmap1", {"tasks": 3, "mode": "threads"})
        assert (spawn.op, spawn.count) == ("spawn_threads", 3)
        files = [s.program[0].file for s in builtin_program("page_fault2", {"tasks": 2, "mode": "threads"})]
        assert files == ["/tmp/willitscale.0", "/tmp/willitscale.1"]  # a file per task, as mkstemp gives

    @pytest.mark.parametrize(("params", "loc", "message"), [
        ({"tasks": 0}, ("params", "tasks"), "must be between 1 and 2048, got 0"),
        ({"tasks": "2"}, ("params", "tasks"), "expected an integer, got '2'"),
        ({"size": "1MB"}, ("params", "size"), "ambiguous"),
        ({"size": 1000}, ("params", "size"), "multiple of 4096"),
        ({"mode": "thread"}, ("params", "mode"), "did you mean 'threads'?"),
        ({"tasks": 2, "nproc": 4}, ("params", "nproc"), "unknown param 'nproc'"),
    ])
    def test_bad_params(self, params: dict, loc: tuple, message: str) -> None:
        """A bad param raises BuiltinError naming the param and what is allowed."""
        with pytest.raises(BuiltinError) as e:
            builtin_program("page_fault1", params)
        assert e.value.loc == loc and message in e.value.message

    def test_unknown(self) -> None:
        """An unknown name raises UnknownBuiltin with the closest known name."""
        with pytest.raises(UnknownBuiltin, match="did you mean 'tlb_flush2'"):
            builtin_program("tlb_flush_2", {})

    def test_params_checked_at_load(self) -> None:
        """A scenario with a bad param of a known builtin fails to load, pointing at the param's line."""
        with pytest.raises(ScenarioError) as e:
            parse_scenario('[[process]]\nname = "p"\nbuiltin = "brk1"\nparams = { size = "-4KiB" }\n', "b.toml")
        assert str(e.value) == 'b.toml:4: process[0].params.size: a size must not be negative, got "-4KiB"'


class TestDocs:
    def test_file_matches_registry(self) -> None:
        """docs/programs.md is exactly what render_docs() generates from the registry."""
        assert DOC.read_text(encoding="utf-8") == render_docs(), f"docs/programs.md is out of date: {REGENERATE}"

    def test_every_builtin_and_param_documented(self) -> None:
        """Every built-in has a section and every param it reads a row."""
        text = render_docs()
        for name in BUILTINS:
            assert f"### `{name}`" in text
            section = text.split(f"### `{name}`", 1)[1].split("### ", 1)[0]
            for key in builtin_params(name):
                assert f"| `{key}` |" in section

    def test_list_shows_builtins(self) -> None:
        """`python -m smpmem list` names every built-in program and shipped scenario."""
        out = subprocess.run([sys.executable, "-m", "smpmem", "list"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
        for name in BUILTINS:
            assert f"  {name} " in out
        for p in (ROOT / "scenarios").glob("*.toml"):
            assert f"  {p.stem} " in out

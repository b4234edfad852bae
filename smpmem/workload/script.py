"""Python scenario scripts: ``python -m smpmem run scenarios/x.py``.

For what a TOML program cannot say (a loop whose bound depends on a result,
a branch, arithmetic on sizes), a scenario can be a Python file that defines:

- ``SCENARIO``: the machine, tunables and run settings as TOML text (the
  same schema as a ``.toml`` scenario; it may also declare ordinary
  ``[[process]]`` entries, which run beside the script);
- ``async def main(sys)``: the program of one extra process, written against
  :class:`Syscalls`, the same system-call layer the TOML steps use:
  ``buf = await sys.mmap(size="1MiB")``, ``await sys.touch(region=buf,
  write=True)``, ``await sys.munmap(region=buf)``, ``await sys.fork(program=[...])``;
- optionally ``COMM``, the process's name (default: the file's stem, cut to 15 characters).

Each call is validated by the step's schema (sizes and times take the same
units as in TOML) and run by the step's handler, in virtual time. Nothing
in a scenario file is executed unless the user runs a Python script on
purpose (DESIGN.md §8).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..scenario import STEP_TYPES, Scenario, ScenarioError, parse_scenario
from ._program import HANDLERS, ProgramError, handler

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..sim import Thread

ScriptMain = Callable[["Syscalls"], Awaitable[Any]]


class ScriptError(ValueError):
    """A script file that cannot be used: one clear message naming the file."""


@dataclass(frozen=True)
class Script:
    path: Path
    scenario: Scenario
    main: ScriptMain
    comm: str


class Syscalls:
    """The system-call layer for a script's thread: one awaitable method per step kind.

    ``mmap`` and ``malloc`` return the region's name (generated when not
    given), which the other calls take as ``region=``; every other call
    returns None. A call with wrong arguments raises :class:`ProgramError`
    naming the call and the field.
    """

    def __init__(self, th: "Thread") -> None:
        self.thread = th
        self._regions = 0

    @property
    def now(self) -> int:
        """Virtual time in nanoseconds."""
        return self.thread.sim.now

    @property
    def pid(self) -> int:
        return self.thread.pid

    def __getattr__(self, op: str) -> Callable[..., Awaitable[Any]]:
        if op not in STEP_TYPES:
            raise AttributeError(f"no system call {op!r} (known: {', '.join(sorted(STEP_TYPES))})")

        async def call(**kwargs: Any) -> Any:
            if op in ("mmap", "malloc") and "name" not in kwargs:
                self._regions += 1
                kwargs["name"] = f"r{self._regions}"
            try:
                step = STEP_TYPES[op].model_validate({"op": op, **kwargs})
            except ValidationError as e:
                err = e.errors()[0]
                where = ".".join(str(x) for x in err.get("loc", ())) or op
                raise ProgramError(f"sys.{op}(): {where}: {err.get('msg')}") from None
            fn = HANDLERS.get(op)
            if fn is None:
                raise ProgramError(f"sys.{op}() needs a part of the memory model this build does not have")
            await fn(self.thread, step)
            return kwargs["name"] if op in ("mmap", "malloc") else None

        call.__name__ = op
        return call


@dataclass(frozen=True)
class _ScriptStep:
    """A pseudo-step running a script's ``main`` inside the ordinary program interpreter."""

    main: ScriptMain
    op: str = "script"


@handler("script")
async def _run_script(th: "Thread", step: _ScriptStep) -> None:
    await step.main(Syscalls(th))


def load_script(path: str | Path, overrides: dict[str, Any] | None = None) -> Script:
    """Import a scenario script and validate its ``SCENARIO`` (ScenarioError / ScriptError on problems)."""
    p = Path(path)
    spec = importlib.util.spec_from_file_location(f"smpmem_script_{p.stem.replace('-', '_')}", p)
    if spec is None or spec.loader is None:
        raise ScriptError(f"{p}: not a Python file")
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except Exception as e:  # the user's code: report it in one line
        raise ScriptError(f"{p}: importing the script failed: {type(e).__name__}: {e}") from None
    text = getattr(mod, "SCENARIO", None)
    if not isinstance(text, str):
        raise ScriptError(f"{p}: a scenario script defines SCENARIO, the machine as TOML text")
    main = getattr(mod, "main", None)
    if main is None or not callable(main):
        raise ScriptError(f"{p}: a scenario script defines `async def main(sys)`")
    sc = parse_scenario(text, source=str(p), overrides=overrides)
    if "name =" not in text and "name=" not in text:
        sc = sc.model_copy(update={"name": p.stem})
    comm = str(getattr(mod, "COMM", p.stem))[:15]
    return Script(p, sc, main, comm)


def start_script(kernel: "Kernel", script: Script) -> None:
    """Start the script's process (after the scenario's own processes, so pids stay deterministic)."""
    from ._process import Process, run_leader

    tgid = kernel.alloc_pid()
    proc = Process(kernel, tgid, script.comm)
    kernel.processes[tgid] = proc
    th = proc.new_thread()
    kernel.start_thread(th, run_leader, [_ScriptStep(script.main)], [])


__all__ = ["Script", "ScriptError", "Syscalls", "load_script", "start_script", "ScenarioError"]

"""Processes and their threads, started from the scenario's ``[[process]]`` entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..sim import Thread

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..scenario import Process as ProcessSpec


@dataclass(eq=False)
class Process:
    """A thread group: ``tgid``, ``comm``, its threads and its program state.

    ``regions`` maps a program's region names (from ``mmap``/``malloc``) to
    what the memory model returned for them; ``exit_code`` is set by ``exit``.
    """

    kernel: "Kernel"
    tgid: int
    comm: str
    spec: "ProcessSpec | None" = None
    parent: "Process | None" = None
    threads: list[Thread] = field(default_factory=list)
    regions: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    oom_score_adj: int = 0
    mm: Any = None  # the address space (mm_struct), once the memory model gives one
    ops: int = 0  # completed loop iterations, for ops/s figures

    def new_thread(self, allowed: list[int] | None = None) -> Thread:
        """A thread of this process (the first thread's pid is the tgid)."""
        k = self.kernel
        pid = self.tgid if not self.threads else k.alloc_pid()
        th = Thread(k, pid, self.comm, tgid=self.tgid, allowed=allowed)
        th.process = self
        self.threads.append(th)
        return th

    @property
    def live_threads(self) -> list[Thread]:
        return [t for t in self.threads if not t.done]


def start_processes(kernel: "Kernel") -> list[Process]:
    """Create every process of the scenario and start its threads at their start times.

    Processes are created in file order (``count`` copies each), so pids are
    assigned deterministically: the first user pid follows the kernel daemons.
    """
    from ._program import run_program

    out: list[Process] = []
    for spec in kernel.scenario.process:
        for _ in range(spec.count):
            tgid = kernel.alloc_pid()
            proc = Process(kernel, tgid, spec.name, spec=spec, oom_score_adj=spec.oom_score_adj)
            kernel.processes[tgid] = proc
            out.append(proc)
            program = spec.program if spec.program is not None else _builtin(spec)
            for _t in range(spec.threads):
                th = proc.new_thread(allowed=spec.cpus)
                kernel.start_thread(th, run_program, program, at=spec.start)
    return out


def _builtin(spec: "ProcessSpec") -> list[Any]:
    from ._builtins import builtin_program

    return builtin_program(spec.builtin or "", spec.params)

"""Simulated user programs: processes, threads, and the steps of a scenario program.

A :class:`Process` is a thread group (tgid) with its threads; each thread is
a :class:`smpmem.sim.Thread` running :func:`run_program` over the scenario's
steps. The memory steps go through the system-call layer of the memory
model; the runtime steps (``compute``, ``lock``, ``sleep``, ``loop``,
``exit``, ``spawn_threads``) need nothing more than the runtime.
"""

from ._process import Process as Process, start_processes as start_processes
from ._program import ProgramExit as ProgramExit, run_program as run_program
from . import _files  # noqa: F401,E402  (registers the open/read/write/fsync steps)
from . import _syscalls  # noqa: F401,E402  (registers the memory steps: mmap, touch, fork, ...)
from . import _kmap, _madvise, _replay, _steps, _wis  # noqa: F401,E402  (register for_each, ops, madvise, kmap, replay)

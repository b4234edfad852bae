"""A /proc snapshot of a running kernel: every file smpmem renders, as {path: text}."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from ..kernel import Kernel


def _lock_stat(k: "Kernel") -> str:
    from .lock_stat import render_lock_stat

    return render_lock_stat(k.locks)


# file name -> renderer; per-process files are added by the address-space model.
FILES: dict[str, Callable[["Kernel"], str]] = {
    "lock_stat": _lock_stat,
}


def snapshot(kernel: "Kernel") -> dict[str, str]:
    """Render every /proc file of the machine at this instant, then ``<pid>/maps|smaps|status|stat|cmdline``
    of every live process (:mod:`smpmem.proc.pid`)."""
    from .pid import snapshot_pids

    out = {name: fn(kernel) for name, fn in FILES.items()}
    out.update(snapshot_pids(kernel))
    return out

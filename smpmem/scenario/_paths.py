"""Host paths in a scenario: files of the real machine a scenario reads (traces for ``replay``).

A relative host path is read from the scenario file's directory, so a
scenario and its trace can move together; :func:`parse_scenario` sets that
directory for the time of the validation (``<string>`` sources use the
current directory). Nothing here is a path inside the simulated machine:
those are absolute and checked against ``[[machine.file]]``.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from pathlib import Path
from typing import Iterator

_BASE: contextvars.ContextVar[Path | None] = contextvars.ContextVar("smpmem_scenario_dir", default=None)


@contextlib.contextmanager
def scenario_dir(path: Path | None) -> Iterator[None]:
    """Resolve relative host paths against ``path`` while validating (None: the current directory)."""
    token = _BASE.set(path)
    try:
        yield
    finally:
        _BASE.reset(token)


def host_file(value: str) -> str:
    """``value`` as an absolute path of an existing, readable regular file; ValueError saying why not."""
    if not value or "\0" in value:
        raise ValueError(f"expected a path to a file on this machine, got {value!r}")
    p = Path(os.path.expanduser(value))
    base = _BASE.get()
    if not p.is_absolute():
        p = (base if base is not None else Path.cwd()) / p
    p = Path(os.path.normpath(p))
    where = f" (relative paths are read from {base}/)" if base is not None and not Path(value).is_absolute() else ""
    if not p.exists():
        raise ValueError(f"no such trace file: {str(p)!r}{where}")
    if not p.is_file():
        raise ValueError(f"{str(p)!r} is not a regular file")
    if not os.access(p, os.R_OK):
        raise ValueError(f"{str(p)!r} is not readable")
    return str(p)

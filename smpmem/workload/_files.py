"""The file steps of a scenario program: ``open``, ``read``, ``write``, ``fsync`` (system calls on files).

Each process keeps the files its steps open in a table (``kernel.fdtables``,
by tgid, one open file per path, shared by its threads), so readahead state
and the fsync error report (errseq) last across steps, as with a file
descriptor kept open. ``open`` opens and closes (the lookup fills the dcache
and leaves the dentry unused on its LRU), unless the process already has the
file open. A failing call is not an error of the scenario: its -errno is
recorded in ``kernel.pagecache.errors`` as ``(pid, op, path, errno name)``
and the program goes on, as a program that checks return values would.
"""

from __future__ import annotations

from typing import Any

from ..mm.block import errno_name
from ..mm.dcache import fput, vfs_open
from ..mm.filemap import vfs_fsync, vfs_read, vfs_write
from ..sim import Thread
from ._program import handler

MAX_ERRORS = 1000


def _table(th: Thread) -> dict[str, Any]:
    k = th.machine
    tables = k.__dict__.setdefault("fdtables", {})
    return tables.setdefault(th.tgid, {})


def _error(th: Thread, op: str, path: str, err: int) -> None:
    errors = th.machine.pagecache.errors  # type: ignore[attr-defined]
    if len(errors) < MAX_ERRORS:
        errors.append((th.pid, op, path, errno_name(err)))


async def _file(th: Thread, path: str, create: bool) -> Any:
    """The process's open file for ``path`` (opened now if needed), or -errno."""
    table = _table(th)
    f = table.get(path)
    if f is None:
        f = await vfs_open(th, path, create)
        if isinstance(f, int):
            return f
        table[path] = f
    return f


@handler("open")
async def _open(th: Thread, step: Any) -> None:
    th.charge(th.machine.costs.syscall_entry)
    if step.file in _table(th):
        return
    f = await vfs_open(th, step.file, step.create)
    if isinstance(f, int):
        _error(th, "open", step.file, f)
        return
    fput(th, f)


@handler("read")
async def _read(th: Thread, step: Any) -> None:
    f = await _file(th, step.file, False)
    if isinstance(f, int):
        _error(th, "read", step.file, f)
        return
    size = step.size if step.size is not None else max(f.f_inode.i_size - step.offset, 0)
    if not size:
        return
    ret = await vfs_read(th, f, step.offset, size)
    if ret < 0:
        _error(th, "read", step.file, ret)


@handler("write")
async def _write(th: Thread, step: Any) -> None:
    f = await _file(th, step.file, True)
    if isinstance(f, int):
        _error(th, "write", step.file, f)
        return
    ret = await vfs_write(th, f, step.offset, step.size)
    if ret < 0:
        _error(th, "write", step.file, ret)


@handler("fsync")
async def _fsync(th: Thread, step: Any) -> None:
    f = await _file(th, step.file, False)
    if isinstance(f, int):
        _error(th, "fsync", step.file, f)
        return
    ret = await vfs_fsync(th, f)
    if ret < 0:
        _error(th, "fsync", step.file, ret)

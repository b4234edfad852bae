"""Built-in programs, selected with ``builtin = "name"`` in a ``[[process]]``.

Each builder reads its ``params`` through :class:`Params` (typed, with a
default and a meaning each, unknown ones refused) and returns a list of
scenario steps, so a built-in program runs through the same interpreter as
a hand-written one and is checked the same way when the scenario loads.

The will-it-scale programs (``page_fault1`` … ``tlb_flush3``) follow
``tests/*.c`` of will-it-scale: the same system calls in the same loops,
``(*iterations)++`` where the C program counts (an ``ops`` step), in
``processes`` mode (the leader forks ``tasks`` children, as the
``*_processes`` binaries do) or ``threads`` mode (it starts ``tasks``
threads sharing one address space). The leader itself only starts the
tasks, like will-it-scale's main(). Differences from the real harness: no
per-task CPU binding (the scheduler places the tasks); the temporary file of
the file-backed tests is written once and fsynced instead of ftruncated, so
it starts in the page cache, clean; sizes are parameters (default the
C programs' 128 MiB) so tests can run small.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ..scenario import Step, parse_size, parse_time
from ..scenario._check import did_you_mean
from ..scenario._paths import _BASE as _SCENARIO_DIR, host_file

PAGE = 4096
FOREVER = 2**63 - 1  # the loop count of "until the run ends"
MAX_TASKS = 2048  # will-it-scale's MAX_TASKS


class BuiltinError(ValueError):
    """A built-in program that cannot be made: unknown name or bad params; ``loc`` is relative to the process."""

    def __init__(self, loc: tuple[Any, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


class UnknownBuiltin(BuiltinError):
    pass


class Params:
    """A builtin's params, read once each with a type, a default and a meaning.

    Reading records the parameter (for ``docs/programs.md`` and ``smpmem list``);
    :meth:`finish` refuses any param the builder did not read.
    """

    def __init__(self, name: str, raw: dict[str, Any], dry: bool = False) -> None:
        self.name = name
        self.raw = dict(raw)
        self.dry = dry  # only listing the params: required ones get a placeholder
        self.resolved: dict[str, str] = {}  # host-path params, made absolute
        self.read: dict[str, tuple[str, Any, str]] = {}  # key -> (type, default in words, meaning)

    def _get(self, key: str, typ: str, default: Any, doc: str, shown: Any = None) -> Any:
        self.read[key] = (typ, default if shown is None else shown, doc)
        return self.raw.get(key, default)

    def _bad(self, key: str, what: str, value: Any) -> BuiltinError:
        return BuiltinError(("params", key), f"expected {what}, got {value!r}")

    def int(self, key: str, default: int, doc: str, lo: int = 0, hi: int = 2**63 - 1,
            shown: Any = None) -> int:
        v = self._get(key, "integer", default, doc, shown)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self._bad(key, "an integer", v)
        if not lo <= v <= hi:
            raise BuiltinError(("params", key), f"must be between {lo} and {hi}, got {v}")
        return v

    def size(self, key: str, default: int, doc: str, lo: int = 1, align: int = 1, signed: bool = False) -> int:
        v = self._get(key, "size", default, doc)
        try:
            n = parse_size(v, signed=signed)
        except ValueError as e:
            raise BuiltinError(("params", key), str(e)) from None
        if not signed and n < lo:
            raise BuiltinError(("params", key), f"must be at least {lo} bytes, got {v!r}")
        if n % align:
            raise BuiltinError(("params", key), f"must be a multiple of {align} bytes, got {v!r}")
        return n

    def time(self, key: str, default: int, doc: str) -> int:
        v = self._get(key, "time", default, doc)
        try:
            return parse_time(v)
        except ValueError as e:
            raise BuiltinError(("params", key), str(e)) from None

    def choice(self, key: str, default: str, choices: tuple[str, ...], doc: str) -> str:
        v = self._get(key, " | ".join(f'"{c}"' for c in choices), default, doc)
        if v not in choices:
            hint = did_you_mean(v, choices) if isinstance(v, str) else ""
            raise BuiltinError(("params", key), f"got {v!r}{hint} (allowed: {', '.join(map(repr, choices))})")
        return v

    def str(self, key: str, default: str | None, doc: str) -> str | None:
        v = self._get(key, "string", default, doc)
        if v is not None and not isinstance(v, str):
            raise self._bad(key, "a string", v)
        return v

    def required_str(self, key: str, doc: str) -> str:
        self.read[key] = ("string", "required", doc)
        v = self.raw.get(key)
        if v is None:
            if self.dry:
                return f"<{key}>"
            raise BuiltinError(("params",), f"builtin {self.name!r} needs params.{key}: {doc[:1].lower() + doc[1:]}")
        if not isinstance(v, str):
            raise self._bad(key, "a string", v)
        return v

    def host_file(self, key: str, doc: str) -> str:
        """A required path of a file on the machine running smpmem, made absolute (scenario's directory)."""
        v = self.required_str(key, doc)
        if self.dry:
            return v
        try:
            path = host_file(v)
        except ValueError as e:
            raise BuiltinError(("params", key), str(e)) from None
        self.resolved[key] = path
        return path

    def bool(self, key: str, default: bool, doc: str) -> bool:
        v = self._get(key, "boolean", default, doc)
        if not isinstance(v, bool):
            raise self._bad(key, "true or false", v)
        return v

    def finish(self) -> None:
        for key in self.raw:
            if key not in self.read:
                known = sorted(self.read)
                raise BuiltinError(("params", key), f"unknown param {key!r} for builtin {self.name!r}"
                                                    f"{did_you_mean(key, known)} (allowed: {', '.join(known) or 'none'})")


Builder = Callable[[Params], list[dict[str, Any]]]
BUILTINS: dict[str, tuple[Builder, str]] = {}
_STEPS = TypeAdapter(list[Step])
_cache: dict[tuple[str, str], list[Any]] = {}


def builtin(name: str, doc: str) -> Callable[[Builder], Builder]:
    """Register a builder of built-in program ``name``; ``doc`` is its one-line description."""

    def deco(fn: Builder) -> Builder:
        BUILTINS[name] = (fn, doc)
        return fn

    return deco


def builtin_params(name: str) -> dict[str, tuple[str, Any, str]]:
    """The params builtin ``name`` reads with their defaults: ``{key: (type, default, meaning)}``."""
    fn, _ = BUILTINS[name]
    p = Params(name, {}, dry=True)
    fn(p)
    return p.read


def resolved_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with host paths (a trace file) made absolute; :class:`BuiltinError` if the program cannot be made."""
    if name not in BUILTINS:
        return dict(params)
    p = Params(name, params)
    BUILTINS[name][0](p)
    return {**params, **p.resolved}


def builtin_program(name: str, params: dict[str, Any]) -> list[Any]:
    """The validated steps of built-in program ``name`` with ``params``; :class:`BuiltinError` if it cannot be made.

    Expanded once per scenario load (host paths such as a trace file resolve
    against the scenario's directory then) and reused when the run starts.
    """
    if name not in BUILTINS:
        raise UnknownBuiltin(("builtin",), f"unknown built-in program {name!r}{did_you_mean(name, list(BUILTINS))} "
                                           f"(known: {', '.join(sorted(BUILTINS))})")
    key = (name, json.dumps(params, sort_keys=True, default=str))
    loading = _SCENARIO_DIR.get() is not None
    if not loading and key in _cache:
        return _cache[key]
    fn, _ = BUILTINS[name]
    p = Params(name, params)
    raw = fn(p)
    p.finish()
    try:
        steps = _STEPS.validate_python(raw)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        where = next((str(x) for x in reversed(err["loc"]) if isinstance(x, str) and x in params), None)
        msg = str((err.get("ctx") or {}).get("error") or err["msg"]).removeprefix("Value error, ")
        raise BuiltinError(("params", where) if where else ("params",), msg) from None
    if len(_cache) > 256:
        _cache.clear()
    _cache[key] = steps
    return steps


# --- small programs -----------------------------------------------------------------------------------------

@builtin("lockstorm", "Threads that think, then take one shared spinlock (a runtime demo, no memory).")
def _lockstorm(p: Params) -> list[dict[str, Any]]:
    lock = p.str("lock", "demo_lock", "Name of the spinlock.")
    hold = p.time("hold", 500, "Time the lock is held.")
    think = p.time("think", 2000, "Time between two acquisitions.")
    n = p.int("iterations", 1000, "Acquisitions per thread.", lo=1)
    return [{"op": "loop", "count": n, "body": [
        {"op": "compute", "ns": think},
        {"op": "lock", "name": lock, "hold": hold},
    ]}]


@builtin("replay", "Replay a valgrind lackey or plain R/W memory trace of a real program, page by page.")
def _replay(p: Params) -> list[dict[str, Any]]:
    f = p.host_file("file", "The trace file, on the machine running smpmem (relative to the scenario's directory).")
    fmt = p.choice("format", "lackey", ("lackey", "plain"), "Trace format (see Trace replay below).")
    limit = p.int("limit", 0, "Replay at most this many accesses; 0: the whole trace.", shown="0 (all)")
    instr = p.bool("instructions", True, "Replay lackey's instruction fetches as loads of the code pages.")
    repeat = p.int("repeat", 1, "Times to replay the trace (the mappings stay between passes).", lo=1)
    step: dict[str, Any] = {"op": "replay", "file": f, "format": fmt, "instructions": instr}
    if limit:
        step["limit"] = limit
    return [step] if repeat == 1 else [{"op": "loop", "count": repeat, "body": [step]}]


# --- will-it-scale --------------------------------------------------------------------------------------------

def _wis(p: Params, default_size: int, task: Callable[[int, int, str], list[dict[str, Any]]],
         file_backed: bool = False, size_doc: str = "Size of the mapping (MEMSIZE).") -> list[dict[str, Any]]:
    """The leader's program: start ``tasks`` copies of ``task(i, size, file)`` as processes or threads."""
    mode = p.choice("mode", "processes", ("processes", "threads"),
                    "processes: the leader forks a child per task; threads: it starts a thread per task, all "
                    "sharing one address space.")
    tasks = p.int("tasks", 1, "Number of tasks (will-it-scale -t).", lo=1, hi=MAX_TASKS)
    size = p.size("size", default_size, size_doc, align=PAGE)
    iterations = p.int("iterations", FOREVER, "Iterations of the test's outer loop per task.", lo=1,
                       shown="until the run ends")
    path = ""
    if file_backed:
        path = p.str("file", "/tmp/willitscale", "Path prefix of each task's temporary file (task i uses "
                                                  "PATH.i), in the simulated machine.") or ""
        if not path.startswith("/"):
            raise BuiltinError(("params", "file"), f"expected an absolute path such as \"/tmp/willitscale\", got {path!r}")
    progs = []
    for i in range(tasks):
        body = task(i, size, f"{path}.{i}")
        setup: list[dict[str, Any]] = []
        if file_backed:
            # mkstemp + ftruncate(MEMSIZE): written once and fsynced instead (no ftruncate in the model).
            setup = [{"op": "write", "file": f"{path}.{i}", "size": size}, {"op": "fsync", "file": f"{path}.{i}"}]
        progs.append(setup + [{"op": "ops", "n": 0}, {"op": "loop", "count": iterations, "body": body},
                              {"op": "ops", "n": 0, "done": True}])
    if mode == "threads":
        if all(pr == progs[0] for pr in progs):
            return [{"op": "spawn_threads", "count": tasks, "program": progs[0]}]
        return [{"op": "spawn_threads", "count": 1, "program": pr} for pr in progs]
    return [{"op": "fork", "program": pr} for pr in progs]


def _anon(size: int) -> dict[str, Any]:
    return {"op": "mmap", "name": "c", "size": size, "prot": "rw", "flags": "private|anonymous"}


def _filemap(size: int, path: str, flags: str) -> dict[str, Any]:
    return {"op": "mmap", "name": "c", "size": size, "prot": "rw", "flags": flags, "file": path}


def _each_page(*body: dict[str, Any]) -> dict[str, Any]:
    return {"op": "for_each", "region": "c", "name": "page", "stride": PAGE, "body": list(body)}


_WRITE_PAGE = {"op": "touch", "region": "page", "write": True}
_READ_PAGE = {"op": "touch", "region": "page", "write": False}
_DONTNEED = {"op": "madvise", "region": "page", "advice": "dontneed"}
_OP = {"op": "ops", "n": 1}
MiB = 1 << 20


@builtin("page_fault1", "will-it-scale page_fault1: mmap anonymous memory, write each page (a fault each), munmap.")
def _page_fault1(p: Params) -> list[dict[str, Any]]:
    return _wis(p, 128 * MiB, lambda i, size, f: [_anon(size), _each_page(_WRITE_PAGE, _OP), {"op": "munmap", "region": "c"}])


@builtin("page_fault2", "will-it-scale page_fault2: private mapping of a file, write each page (a COW fault each), munmap.")
def _page_fault2(p: Params) -> list[dict[str, Any]]:
    return _wis(p, 128 * MiB, lambda i, size, f: [_filemap(size, f, "private"), _each_page(_WRITE_PAGE, _OP),
                                                   {"op": "munmap", "region": "c"}], file_backed=True)


@builtin("page_fault3", "will-it-scale page_fault3: shared mapping of a file, write each page (dirtying it), munmap.")
def _page_fault3(p: Params) -> list[dict[str, Any]]:
    return _wis(p, 128 * MiB, lambda i, size, f: [_filemap(size, f, "shared"), _each_page(_WRITE_PAGE, _OP),
                                                   {"op": "munmap", "region": "c"}], file_backed=True)


@builtin("malloc1", "will-it-scale malloc1: malloc and free 128 MiB (glibc mmaps it), untouched.")
def _malloc1(p: Params) -> list[dict[str, Any]]:
    return _wis(p, 128 * MiB, lambda i, size, f: [{"op": "malloc", "name": "c", "size": size},
                                                   {"op": "free", "name": "c"}, _OP],
                size_doc="Bytes allocated (SIZE).")


@builtin("mmap1", "will-it-scale mmap1: mmap and munmap 128 MiB of anonymous memory, untouched.")
def _mmap1(p: Params) -> list[dict[str, Any]]:
    return _wis(p, 128 * MiB, lambda i, size, f: [_anon(size), {"op": "munmap", "region": "c"}, _OP])


@builtin("mmap2", "will-it-scale mmap2: mmap and munmap 128 MiB of a file (private), untouched.")
def _mmap2(p: Params) -> list[dict[str, Any]]:
    return _wis(p, 128 * MiB, lambda i, size, f: [_filemap(size, f, "private"), {"op": "munmap", "region": "c"}, _OP],
                file_backed=True)


@builtin("brk1", "will-it-scale brk1: grow the heap by a page and shrink it back (2 ops per iteration).")
def _brk1(p: Params) -> list[dict[str, Any]]:
    return _wis(p, PAGE, lambda i, size, f: [{"op": "brk", "delta": size}, {"op": "brk", "delta": -size},
                                             {"op": "ops", "n": 2}],
                size_doc="Change of the program break (one page in brk1.c).")


@builtin("tlb_flush1", "will-it-scale tlb_flush1: private file mapping; per page write, MADV_DONTNEED, read back.")
def _tlb_flush1(p: Params) -> list[dict[str, Any]]:
    return _wis(p, 128 * MiB, lambda i, size, f: [_filemap(size, f, "private"),
                                                   _each_page(_WRITE_PAGE, _DONTNEED, _READ_PAGE, _OP),
                                                   {"op": "munmap", "region": "c"}], file_backed=True,
                size_doc="Size of the mapping (FILESIZE).")


@builtin("tlb_flush2", "will-it-scale tlb_flush2: 1 MiB anonymous mapping; per page write, MADV_DONTNEED, read back.")
def _tlb_flush2(p: Params) -> list[dict[str, Any]]:
    return _wis(p, 1 * MiB, lambda i, size, f: [_anon(size), _each_page(_WRITE_PAGE, _DONTNEED, _READ_PAGE, _OP),
                                                 {"op": "munmap", "region": "c"}],
                size_doc="Size of the mapping (MEMORYSIZE).")


@builtin("tlb_flush3", "will-it-scale tlb_flush3: shared file mapping; per page write, MADV_DONTNEED, read back.")
def _tlb_flush3(p: Params) -> list[dict[str, Any]]:
    return _wis(p, 128 * MiB, lambda i, size, f: [_filemap(size, f, "shared"),
                                                   _each_page(_WRITE_PAGE, _DONTNEED, _READ_PAGE, _OP),
                                                   {"op": "munmap", "region": "c"}], file_backed=True,
                size_doc="Size of the mapping (FILESIZE).")


WILL_IT_SCALE = ("page_fault1", "page_fault2", "page_fault3", "malloc1", "mmap1", "mmap2", "brk1",
                 "tlb_flush1", "tlb_flush2", "tlb_flush3")

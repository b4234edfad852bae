"""What sweeps and explorations share: seeds, typed parameters, the worker, executors, figures.

A *point* is one run of a scenario with some overrides (``{"machine.cpus":
4, "run.seed": 3}``) into a directory of its own. :func:`run_point` is the
function a worker executes: it parses the scenario text it is given (so a
remote worker needs no copy of the file), runs it with
:func:`smpmem.run.run_scenario` and returns the point's figures read back
from the ``run.json`` it wrote, the same way :func:`figures_of` reads a
point done by an earlier sweep. Everything a worker returns is plain data
(strings, numbers, dicts), so it crosses a process or network boundary as
it is.

Executors are ``concurrent.futures`` ones: a ``ProcessPoolExecutor`` on the
local cores, or a Dask cluster through ``distributed.Client.get_executor()``
(the ``cluster`` extra). Run directories are written by the workers, so on a
cluster ``--out`` must be on a filesystem every worker shares.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import os
import re
import typing
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

FINAL_STATUSES = ("completed", "failed")  # a point with one of these in its run.json is done


class ExperimentError(ValueError):
    """Bad input to a sweep or an exploration (a parameter, a seed range, a scheduler): exit status 2."""


# --- seeds ----------------------------------------------------------------------------------------

def parse_seeds(text: str) -> list[int]:
    """``"5"`` -> 1..5; ``"1..1000"`` (inclusive) or ``"3-9"``; ``"1,7,9"``; combinations ``"1..3,10"``."""
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        n = int(text)
        if n < 1:
            raise ExperimentError("--seeds: a count must be at least 1")
        return list(range(1, n + 1))
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)\s*(?:\.\.|-)\s*(\d+)", part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise ExperimentError(f"--seeds: empty range {part!r} (write LOW..HIGH)")
            out.extend(range(lo, hi + 1))
        elif re.fullmatch(r"\d+", part):
            out.append(int(part))
        else:
            raise ExperimentError(f"--seeds: {part!r} is not a count (5), a range (1..1000) or a list (1,7,9)")
    seen: set[int] = set()
    return [s for s in out if not (s in seen or seen.add(s))]  # type: ignore[func-returns-value]


# --- typed parameters -----------------------------------------------------------------------------

SECTIONS = ("machine", "tunables", "run", "costs")  # where a bare name (``cpus``) is looked up


@dataclass(frozen=True)
class Param:
    """One swept parameter: its dotted path (the table's column), its typed values, and linked paths.

    ``also`` are paths set to the same value at every point (``--param
    machine.cpus+process[0].params.tasks=1,2,4``: as many tasks as CPUs).
    """

    path: str
    values: tuple[Any, ...]
    also: tuple[str, ...] = ()

    def overrides(self, value: Any) -> dict[str, Any]:
        return {p: value for p in (self.path, *self.also)}

    @property
    def short(self) -> str:
        """The last named component of the path (``pcp_batch`` for ``tunables.pcp_batch``)."""
        return [p for p in _split_path(self.path) if isinstance(p, str)][-1]


def _unwrap(ann: Any) -> Any:
    """``Optional[X]`` -> X, ``Annotated[X, ...]`` -> X (what to walk into)."""
    while True:
        origin = typing.get_origin(ann)
        if origin is typing.Annotated:
            ann = typing.get_args(ann)[0]
        elif origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if len(args) != 1:
                return ann
            ann = args[0]
        else:
            return ann


def _split_path(path: str) -> list[Any]:
    out: list[Any] = []
    for part in path.split("."):
        m = re.fullmatch(r"([^\[\]]+)((?:\[\d+\])*)", part.strip())
        if not m:
            raise ExperimentError(f"--param: {path!r} is not a dotted path such as machine.cpus or process[0].threads")
        out.append(m.group(1))
        out.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return out


def resolve_path(path: str) -> str:
    """The full dotted path of a parameter: ``cpus`` -> ``machine.cpus`` when one section has it."""
    from pydantic import BaseModel

    from ..scenario import Scenario

    if "." in path or "[" in path:
        return path
    if path in Scenario.model_fields and not isinstance(_unwrap(Scenario.model_fields[path].annotation), type):
        return path
    hits = []
    for sec in SECTIONS:
        model = _unwrap(Scenario.model_fields[sec].annotation)
        if isinstance(model, type) and issubclass(model, BaseModel) and path in model.model_fields:
            hits.append(f"{sec}.{path}")
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise ExperimentError(f"--param: {path!r} is ambiguous: write one of {', '.join(hits)}")
    if path in Scenario.model_fields:
        return path
    raise ExperimentError(f"--param: no field {path!r} in [{'], ['.join(SECTIONS)}] (write a dotted path "
                          f"such as machine.cpus, tunables.pcp_batch or process[0].threads)")


def field_type(path: str) -> Any:
    """The type a value at dotted ``path`` must have, with its constraints (for validation), or Any."""
    from pydantic import BaseModel

    from ..scenario import Scenario

    node: Any = Scenario
    info: Any = None
    for el in _split_path(path):
        node = _unwrap(node)
        if isinstance(el, int):
            if typing.get_origin(node) is not list:
                raise ExperimentError(f"--param {path}: [{el}] indexes something that is not a list")
            node, info = typing.get_args(node)[0], None
        elif isinstance(node, type) and issubclass(node, BaseModel):
            fields = node.model_fields
            if el not in fields:
                import difflib

                close = difflib.get_close_matches(el, list(fields), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ExperimentError(f"--param {path}: {node.__name__} has no field {el!r}{hint}")
            info = fields[el]
            node = info.annotation
        elif typing.get_origin(_unwrap(node)) is dict or node is Any:
            node, info = Any, None  # a free-form table (process params): any TOML value
        else:
            raise ExperimentError(f"--param {path}: {el!r} goes inside a value that is not a table")
    if info is not None and info.metadata:
        return typing.Annotated[(info.annotation, *info.metadata)]
    return node


def _candidates(text: str) -> Iterator[Any]:
    """The typed readings of one value, most specific first: int, float, bool, then the string."""
    t = text.strip()
    if re.fullmatch(r"[+-]?\d+", t):
        yield int(t)
    try:
        f = float(t)
        if math.isfinite(f):
            yield f
    except ValueError:
        pass
    if t.lower() in ("true", "false"):
        yield t.lower() == "true"
    yield t


def parse_param(spec: str) -> Param:
    """``"machine.cpus=1,2,4"`` -> Param("machine.cpus", (1, 2, 4)), each value typed by the schema.

    ``"machine.cpus+process[0].params.tasks=1,2,4"`` links paths: each value
    must suit all of them and sets all of them.
    """
    if "=" not in spec:
        raise ExperimentError(f"--param {spec!r}: write PATH=V1,V2,... such as machine.cpus=1,2,4")
    name, _, vals = spec.partition("=")
    paths = [resolve_path(n.strip()) for n in name.split("+")]
    raw = [v for v in (x.strip() for x in vals.split(",")) if v]
    if not raw:
        raise ExperimentError(f"--param {paths[0]}: no values after '='")
    typed = [_typed(paths[0], v) for v in raw]
    for other in paths[1:]:
        for v, t in zip(raw, typed):
            if _typed(other, v) != t:
                raise ExperimentError(f"--param {'+'.join(paths)}: {v!r} means {t!r} for {paths[0]} but "
                                      f"{_typed(other, v)!r} for {other}")
    return Param(paths[0], tuple(typed), tuple(paths[1:]))


def _typed(path: str, v: str) -> Any:
    """The first reading of ``v`` (int, float, bool, str) that the field at ``path`` accepts."""
    from pydantic import ConfigDict, TypeAdapter, ValidationError

    ann = field_type(path)
    if ann is Any:
        return next(_candidates(v))
    try:
        adapter = TypeAdapter(ann, config=ConfigDict(strict=True))
    except Exception:  # a model type or something TypeAdapter cannot take with a config
        adapter = TypeAdapter(ann)
    err: str | None = None
    for cand in _candidates(v):
        try:
            adapter.validate_python(cand)
        except ValidationError as e:
            err = err or e.errors()[0]["msg"]
            continue
        return cand
    raise ExperimentError(f"--param {path}: {v!r} is not allowed: {err}")


def value_text(v: Any) -> str:
    """A value as it appears in a point's directory name and in the table."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def point_name(params: Sequence[tuple[str, Any]], seed: int) -> str:
    """The run directory of a point: ``cpus=4_pcp_batch=31_seed=3`` (deterministic, filesystem-safe)."""
    parts = [f"{k}={value_text(v)}" for k, v in params] + [f"seed={seed}"]
    return re.sub(r"[^A-Za-z0-9_.=+-]", "-", "_".join(parts))


# --- the worker -----------------------------------------------------------------------------------

def run_point(text: str, source: str, overrides: dict[str, Any], out_dir: str,
              discard_completed: bool = False) -> dict[str, Any]:
    """Run one point (in a worker): the scenario ``text`` with ``overrides`` into ``out_dir``.

    Returns ``{"status", "error", "dir", "run": <run.json minus config>}``. A
    scenario the overrides make invalid, or an error outside the model, is a
    failed point, never an exception: one bad point must not sink a sweep.
    ``discard_completed``: remove the run directory of a run that completed
    (an exploration keeps only the runs that failed).
    """
    from ..run import run_scenario
    from ..scenario import ScenarioError, parse_scenario

    d = Path(out_dir)
    try:
        sc = parse_scenario(text, source, overrides)
    except ScenarioError as e:
        return {"status": "failed", "error": f"ScenarioError: {e}", "dir": str(d), "run": None}
    try:
        res = run_scenario(sc, out_dir=d, source=source)
    except Exception as e:  # a crash outside the engine's own error handling
        return {"status": "failed", "error": f"{type(e).__name__}: {e}", "dir": str(d), "run": None}
    _add_wis(d, res.kernel)
    info = read_run_json(d)
    if discard_completed and res.status == "completed":
        import shutil

        shutil.rmtree(d, ignore_errors=True)
        return {"status": res.status, "error": res.error, "dir": None, "run": info}
    return {"status": res.status, "error": res.error, "dir": str(d), "run": info}


def _add_wis(d: Path, kernel: Any) -> None:
    """Put the will-it-scale counts (``"wis"``, smpmem.workload.wis) in run.json if run.py did not."""
    from ..workload.wis import wis_summary

    p = d / "run.json"
    try:
        info = orjson.loads(p.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return
    if "wis" in info:
        return
    summary = wis_summary(kernel)
    if summary is None:
        return
    info["wis"] = summary
    p.write_bytes(orjson.dumps(info, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))


def read_run_json(d: Path) -> dict[str, Any] | None:
    """A run directory's run.json without its (large) resolved config; None if missing or damaged."""
    try:
        info = orjson.loads((Path(d) / "run.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(info, dict):
        return None
    info.pop("config", None)
    return info


def is_done(d: Path) -> dict[str, Any] | None:
    """The run.json of a point already run to a final status, else None (it must be run)."""
    info = read_run_json(d)
    if info is not None and info.get("status") in FINAL_STATUSES:
        return info
    return None


# --- executors ------------------------------------------------------------------------------------

class Pool:
    """A ``concurrent.futures`` executor for points: local processes, or a Dask cluster's.

    Use as a context manager; ``executor`` may be given ready-made (tests, a
    Client the caller owns), in which case it is not shut down here.
    """

    def __init__(self, jobs: int | None = None, scheduler: str | None = None,
                 executor: cf.Executor | None = None) -> None:
        self.jobs = jobs  # None: one per local core, or one per cluster worker thread
        self.scheduler = scheduler
        self.executor = executor
        self._owned: list[Any] = []
        self.where = "the given executor"

    def __enter__(self) -> cf.Executor:
        if self.executor is not None:
            self.jobs = self.jobs or os.cpu_count() or 1
            return self.executor
        if self.scheduler:
            try:
                from distributed import Client
            except ImportError:
                raise ExperimentError("--scheduler needs dask.distributed: pip install 'smpmem[cluster]'") from None
            try:
                client = Client(self.scheduler, timeout="10s")
            except (OSError, TimeoutError, ValueError) as e:
                raise ExperimentError(f"--scheduler {self.scheduler}: cannot connect: {e}") from None
            self._owned.append(client)
            self.executor = client.get_executor(pure=False)
            n = sum(w.get("nthreads", 1) for w in client.scheduler_info().get("workers", {}).values())
            self.jobs = self.jobs or max(n, 1)
            self.where = f"the Dask cluster at {self.scheduler} ({n} worker threads)"
        else:
            import multiprocessing

            # forkserver: workers forked from a clean server process, not from a parent that may
            # hold threads (a Dask client, a progress bar).
            ctx = multiprocessing.get_context("forkserver")
            self.jobs = self.jobs or os.cpu_count() or 1
            self.executor = cf.ProcessPoolExecutor(max_workers=self.jobs, mp_context=ctx)
            self._owned.append(self.executor)
            self.where = f"{self.jobs} local process(es)"
        return self.executor

    def __exit__(self, *exc: Any) -> None:
        for obj in reversed(self._owned):
            if isinstance(obj, cf.Executor):
                obj.shutdown(wait=True, cancel_futures=True)
            else:
                obj.close()


def run_many(executor: cf.Executor, jobs: Iterable[tuple[Any, tuple]], window: int,
             stop: Any = None) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Submit ``(key, args)`` jobs of :func:`run_point` keeping ``window`` in flight; yield ``(key, result)``.

    Results come back as they finish. A job whose worker died (a crashed
    process, a lost cluster worker) yields a failed result naming the
    error. ``stop(key)``, if given, is asked before each new submission:
    True stops submitting (what is in flight still completes).
    """
    it = iter(jobs)
    inflight: dict[cf.Future, Any] = {}
    exhausted = False
    while True:
        while not exhausted and len(inflight) < window:
            try:
                key, args = next(it)
            except StopIteration:
                exhausted = True
                break
            if stop is not None and stop(key):
                exhausted = True
                break
            inflight[executor.submit(run_point, *args)] = key
        if not inflight:
            return
        done, _ = cf.wait(list(inflight), return_when=cf.FIRST_COMPLETED)
        for fut in sorted(done, key=lambda f: inflight[f]):  # keys are comparable: a stable order
            key = inflight.pop(fut)
            try:
                res = fut.result()
            except BaseException as e:  # the worker died; the point failed, the sweep goes on
                res = {"status": "failed", "error": f"worker error: {type(e).__name__}: {e}", "dir": None,
                       "run": None}
            yield key, res


# --- figures --------------------------------------------------------------------------------------

TLB_COUNTERS = ("nr_tlb_remote_flush", "nr_tlb_remote_flush_received", "nr_tlb_local_flush_all",
                "nr_tlb_local_flush_one")
FAULT_COUNTERS = ("pgfault", "pgmajfault")
RECLAIM_GROUPS = {  # a figure: the /proc/vmstat counters it sums (when present)
    "pgscan": ("pgscan_kswapd", "pgscan_direct", "pgscan_khugepaged"),
    "pgsteal": ("pgsteal_kswapd", "pgsteal_direct", "pgsteal_khugepaged"),
    "allocstall": ("allocstall_dma", "allocstall_dma32", "allocstall_normal", "allocstall_movable"),
}


def figures_of(info: dict[str, Any] | None, warmup_ns: int = 0) -> dict[str, Any]:
    """The key figures of one run from its run.json: ops/s, lock waits, faults, TLB, reclaim.

    ``ops`` and ``ops_per_sec`` are will-it-scale's when the run counted
    operations (``ops`` steps: run.json's ``"wis"``; the sum of the tasks'
    rates over their own windows, each starting no earlier than
    ``warmup_ns``), else the processes' completed loop iterations per
    simulated second. ``lock_wait_ns`` / ``lock_contentions`` are totals over
    all classes; ``lock:<class>:wait_ns`` and ``lock:<class>:contentions`` per
    class. Counters absent from the run are left out (not zero).
    """
    if not info:
        return {}
    out: dict[str, Any] = {}
    vns = int(info.get("virtual_ns") or 0)
    out["virtual_ns"] = vns
    out["events"] = int(info.get("events") or 0)
    if info.get("wis"):
        from ..workload.wis import ops_per_sec

        w = ops_per_sec(info, warmup_ns=warmup_ns)
        out["ops"] = w.ops
        out["ops_per_sec"] = w.total
    else:
        procs = info.get("processes") or []
        ops = sum(int(p.get("ops") or 0) for p in procs)
        out["ops"] = ops
        out["ops_per_sec"] = ops / (vns / 1e9) if vns else 0.0
    locks = info.get("locks") or {}
    out["lock_wait_ns"] = sum(int(v.get("waittime_total", 0)) for v in locks.values())
    out["lock_contentions"] = sum(int(v.get("contentions", 0)) for v in locks.values())
    for name in sorted(locks):
        v = locks[name]
        out[f"lock:{name}:wait_ns"] = int(v.get("waittime_total", 0))
        out[f"lock:{name}:contentions"] = int(v.get("contentions", 0))
    counters = info.get("counters") or {}
    for c in FAULT_COUNTERS + TLB_COUNTERS:
        if c in counters:
            out[c] = int(counters[c])
    for fig, names in RECLAIM_GROUPS.items():
        present = [counters[n] for n in names if n in counters]
        if present:
            out[fig] = int(sum(present))
    return out


def scenario_text(path: Path) -> str:
    """The scenario file's text (the workers parse it; they need not see the file)."""
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ExperimentError(f"{path}: cannot read: {e}") from None

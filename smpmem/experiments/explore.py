"""Schedule exploration: run a scenario under many seeds to find an interleaving that breaks an invariant.

Each seed runs with ``run.schedule = "pct"`` (the engine orders wake-ups due
at the same instant by a PCT priority drawn from the seed, see
:class:`smpmem.sim.engine.PctSchedule`), ``run.debug_vm = true`` (every
invariant checked at every hand-off) and no event log (speed). The seed
also drives every other random stream of the run, as in any run. Seeds run
in parallel like sweep points; runs that complete are discarded, failing
ones are kept under ``<out>/runs/seed=<n>/``.

The smallest failing seed is then run once more, with the scenario's own
event selection, into ``<out>/seed=<n>/``: the directory to open, analyse
and replay. Its error must be the scan's (a difference would be a
determinism bug, and is reported). The replay command is
``python -m smpmem run SCENARIO --seed N`` when the scenario itself says
``schedule = "pct"`` and ``debug_vm = true`` (as ``scenarios/broken-shootdown.toml``
does); otherwise explore writes ``<out>/replay.toml`` — the scenario with
those settings — and the command names it.

What counts as found (``check``):

- ``invariants``: the run failed on a broken model invariant: a
  :class:`~smpmem.sim.ModelBug` (stale TLB entry, data loss, a page lost or
  double-owned ...) or an assertion, during the run or in the final check.
- ``any``: any failed run, deadlocks and workload errors included.
"""

from __future__ import annotations

import csv
import json
import math
import re
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ._common import ExperimentError, Pool, run_many, run_point, scenario_text

CHECKS = ("invariants", "any")
OnSeed = Callable[[int, dict[str, Any], int, int], None]  # (seed, result, done, total)


def failure_kind(status: str, error: str | None) -> str | None:
    """``"invariant"`` for a broken model invariant, ``"other"`` for another failure, None for a run that passed."""
    if status != "failed":
        return None
    e = error or ""
    if e.startswith(("ModelBug", "AssertionError", "invariant ")):
        return "invariant"
    return "other"


@dataclass
class ExploreResult:
    """What an exploration found."""

    dir: Path
    scenario: str
    check: str
    seeds_run: list[int] = field(default_factory=list)
    results: dict[int, dict[str, Any]] = field(default_factory=dict)  # seed -> {status, error, kind}
    smallest: int | None = None  # the smallest seed that failed the check
    replay_dir: Path | None = None
    replay_error: str | None = None
    replay_same: bool | None = None
    replay_command: str | None = None
    stopped_early: bool = False
    where: str = ""
    wall_s: float = 0.0

    @property
    def found(self) -> list[int]:
        """Seeds that failed the check, in order."""
        want = ("invariant",) if self.check == "invariants" else ("invariant", "other")
        return sorted(s for s, r in self.results.items() if r["kind"] in want)

    @property
    def other(self) -> list[int]:
        """Seeds that failed in a way the check does not count (with ``invariants``: deadlocks, workload errors)."""
        if self.check == "any":
            return []
        return sorted(s for s, r in self.results.items() if r["kind"] == "other")


def run_explore(
    scenario: str | Path,
    seeds: Sequence[int],
    check: str = "invariants",
    stop_first: bool = False,
    out: str | Path | None = None,
    jobs: int | None = None,
    scheduler: str | None = None,
    executor: Any = None,
    depth: int | None = None,
    overrides: dict[str, Any] | None = None,
    on_seed: OnSeed | None = None,
) -> ExploreResult:
    """Run ``scenario`` under each seed with the PCT schedule and the checks on; replay the smallest failure.

    ``overrides`` (dotted paths, as for :func:`smpmem.scenario.load_scenario`)
    change the scenario for every seed, e.g. ``{"tunables.tlb_skip_shootdown": False}``.
    """
    from ..scenario import ScenarioError, load_scenario

    if check not in CHECKS:
        raise ExperimentError(f"--check {check}: one of {', '.join(CHECKS)}")
    if not seeds:
        raise ExperimentError("--seeds: no seeds to run")
    path = Path(scenario)
    fixed: dict[str, Any] = {**(overrides or {}), "run.schedule": "pct", "run.debug_vm": True}
    if depth is not None:
        fixed["run.pct_depth"] = depth
    try:
        base = load_scenario(path, overrides=fixed)
        own = load_scenario(path)
    except ScenarioError as e:
        raise ExperimentError(str(e)) from None
    d = Path(out) if out is not None else Path("logs") / f"explore-{base.name}"
    (d / "runs").mkdir(parents=True, exist_ok=True)
    text = scenario_text(path)
    source = str(path)
    res = ExploreResult(d, source, check)
    order = sorted(seeds)
    jobs_iter = ((s, (text, source, {**fixed, "run.seed": s, "run.events": []},
                      str((d / "runs" / f"seed={s}").resolve()), True)) for s in order)

    def stop(seed: int) -> bool:
        if not stop_first:
            return False
        found = res.found
        return bool(found) and seed > found[0]

    t0 = time.perf_counter()
    pool = Pool(jobs=jobs, scheduler=scheduler, executor=executor)
    with pool as ex:
        res.where = pool.where
        for seed, r in run_many(ex, jobs_iter, window=max(2 * (pool.jobs or 1), 2), stop=stop):
            res.results[seed] = {"status": r["status"], "error": r.get("error"),
                                 "kind": failure_kind(r["status"], r.get("error"))}
            if on_seed is not None:
                on_seed(seed, res.results[seed], len(res.results), len(order))
    res.seeds_run = sorted(res.results)
    res.stopped_early = len(res.seeds_run) < len(order)
    found = res.found
    if found:
        # Everything below the first found seed has run (seeds are submitted in order, and
        # stop() only stops submitting seeds above it), so found[0] is the smallest failing seed.
        s = res.smallest = found[0]
        res.replay_dir = d / f"seed={s}"
        replay = run_point(text, source, {**fixed, "run.seed": s}, str(res.replay_dir.resolve()))
        res.replay_error = replay.get("error")
        res.replay_same = replay["status"] == "failed" and res.replay_error == res.results[s]["error"]
        res.replay_command = _replay_command(own, source, d, fixed, s)
    res.wall_s = time.perf_counter() - t0
    _write_report(res)
    return res


def _replay_command(own: Any, source: str, d: Path, fixed: dict[str, Any], seed: int) -> str:
    """The command that reproduces ``seed``: the scenario itself if it already runs that way, else replay.toml."""
    same = all(k in ("run.schedule", "run.debug_vm", "run.pct_depth") for k in fixed)
    if same and own.run.schedule == "pct" and own.run.debug_vm and \
            own.run.pct_depth == fixed.get("run.pct_depth", own.run.pct_depth):
        return f"python -m smpmem run {source} --seed {seed}"
    data = tomllib.loads(Path(source).read_text())
    for k, v in fixed.items():
        node = data
        *parents, last = k.split(".")
        for part in parents:
            m = re.fullmatch(r"(\w+)\[(\d+)\]", part)
            node = node[m.group(1)][int(m.group(2))] if m else node.setdefault(part, {})
        node[last] = v
    data.setdefault("name", own.name)
    text = dump_toml(data)
    p = d / "replay.toml"
    p.write_text(f"# {source} as `smpmem explore` ran it (schedule, debug_vm, overrides).\n" + text)
    return f"python -m smpmem run {p} --seed {seed}"


def _write_report(res: ExploreResult) -> None:
    with open(res.dir / "explore.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["seed", "status", "kind", "error"])
        for s in res.seeds_run:
            r = res.results[s]
            w.writerow([s, r["status"], r["kind"] or "", r["error"] or ""])
    info = {
        "scenario": res.scenario, "check": res.check, "seeds_run": len(res.seeds_run),
        "first_seed": res.seeds_run[0] if res.seeds_run else None,
        "last_seed": res.seeds_run[-1] if res.seeds_run else None,
        "found": res.found, "other_failures": res.other, "smallest": res.smallest,
        "error": res.results[res.smallest]["error"] if res.smallest is not None else None,
        "replay_dir": str(res.replay_dir) if res.replay_dir else None, "replay_same": res.replay_same,
        "replay_command": res.replay_command, "stopped_early": res.stopped_early,
        "where": res.where, "wall_s": round(res.wall_s, 3),
    }
    (res.dir / "explore.json").write_bytes(orjson.dumps(info, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))


# --- a small TOML writer (for replay.toml) -------------------------------------------------------------

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _key(k: str) -> str:
    return k if _BARE.fullmatch(k) else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are TOML basic-string escapes
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise ExperimentError(f"cannot write {type(v).__name__} as TOML")


def _table(prefix: str, data: dict[str, Any], lines: list[str]) -> None:
    subs = []
    for k, v in data.items():
        if isinstance(v, dict):
            subs.append((k, v, False))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v) and not prefix.count("["):
            subs.append((k, v, True))
        else:
            lines.append(f"{_key(k)} = {_value(v)}")
    for k, v, is_array in subs:
        name = f"{prefix}.{_key(k)}" if prefix else _key(k)
        if is_array:
            for item in v:
                lines.append("")
                lines.append(f"[[{name}]]")
                _inline_only(item, lines)
        else:
            lines.append("")
            lines.append(f"[{name}]")
            _table(name, v, lines)


def _inline_only(data: dict[str, Any], lines: list[str]) -> None:
    for k, v in data.items():
        lines.append(f"{_key(k)} = {_value(v)}")


def dump_toml(data: dict[str, Any]) -> str:
    """``data`` (what tomllib read, possibly changed) as TOML text that reads back equal."""
    lines: list[str] = []
    _table("", data, lines)
    text = "\n".join(lines).lstrip("\n") + "\n"
    if tomllib.loads(text) != data:  # pragma: no cover - a shape the writer does not know
        raise ExperimentError("could not write the replay scenario as TOML")
    return text


__all__ = ["CHECKS", "ExploreResult", "dump_toml", "failure_kind", "run_explore"]

"""The experiment subcommands of ``python -m smpmem``: sweep and explore.

``add_commands(sub)`` adds them to the main parser's subparsers and returns
{name: handler}; each handler takes the parsed arguments and returns the
exit status. Bad input (an unknown parameter, a value the schema refuses,
a malformed seed range, an unreachable scheduler) is one line ``smpmem: …``
on stderr and status 2. ``sweep`` exits 1 when some point failed (the
table still has every point); ``explore`` exits 1 when it found a failing
seed, 0 when every seed passed.
"""

from __future__ import annotations

import argparse
import sys
from functools import wraps
from pathlib import Path
from typing import Any, Callable

EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


def _guard(fn: Handler) -> Handler:
    """Run a handler: input errors become one stderr line and status 2."""

    @wraps(fn)
    def run(args: argparse.Namespace) -> int:
        from ._common import ExperimentError

        try:
            return fn(args)
        except ExperimentError as e:
            print(f"smpmem: {e}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("smpmem: interrupted; points already run are kept (re-run to continue)", file=sys.stderr)
            return 130

    return run


def _jobs(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def add_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> dict[str, Handler]:
    """Add sweep and explore to ``sub``; return {command: handler}."""
    s = sub.add_parser(
        "sweep", help="run a scenario over a grid of parameters × seeds; one table, plots",
        description="Run SCENARIO for every combination of the --param values (× --seeds), in parallel on the "
                    "local cores or on a Dask cluster. Each point is a run directory under OUT; the key figures "
                    "of all points go to OUT/results.csv (and .parquet), OUT/summary.csv (mean and stdev over "
                    "seeds) and OUT/plots/. Points already run (run.json with a final status) are skipped.")
    s.add_argument("scenario", help="scenario file (.toml), or the name of a shipped scenario")
    s.add_argument("--param", "-p", action="append", default=[], metavar="PATH=V1,V2,...", required=True,
                   help="a swept parameter: a dotted path (machine.cpus, tunables.pcp_batch, process[0].threads; "
                        "a bare name such as cpus if one section has it) and its values, typed by the schema; "
                        "repeat for a grid")
    s.add_argument("--seeds", metavar="SEEDS",
                   help="seeds per point: a count (5 = seeds 1..5), a range (1..10) or a list (1,7,9); "
                        "default: the scenario's run.seed")
    s.add_argument("--jobs", "-j", type=_jobs, metavar="N", help="points run at once (default: one per core, or "
                                                                   "per worker thread of the cluster)")
    s.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler, e.g. tcp://host:8786 (needs the "
                                                          "'cluster' extra; OUT must be on a shared filesystem)")
    s.add_argument("--out", type=Path, help="the sweep directory (default: logs/sweep-<scenario name>)")
    s.add_argument("--x", metavar="PARAM", help="the parameter on the plots' x axis (default: the first --param)")
    s.add_argument("--warmup", metavar="TIME", help='virtual time before will-it-scale ops/s start counting, '
                                                   'e.g. "1ms" (default: 0)')
    s.add_argument("--no-plots", action="store_true", help="write the tables only")
    s.add_argument("-q", "--quiet", action="store_true", help="no line per point")

    e = sub.add_parser(
        "explore", help="run a scenario under many seeds with a PCT schedule; find the smallest failing seed",
        description="Schedule exploration: run SCENARIO once per seed with run.schedule = \"pct\" (wake-ups due "
                    "at the same instant in an order drawn from the seed) and the invariant checks on, in "
                    "parallel. Reports the smallest seed that breaks an invariant and writes its run directory "
                    "(with events) and the command that replays it.")
    e.add_argument("scenario", help="scenario file (.toml), or the name of a shipped scenario")
    e.add_argument("--seeds", default="1..200", metavar="SEEDS",
                   help="seeds to run: a range (1..1000), a count (200 = 1..200) or a list (default: 1..200)")
    e.add_argument("--check", default="invariants", choices=("invariants", "any"),
                   help="what counts as found: a broken invariant (ModelBug; default), or any failed run "
                        "(deadlocks too)")
    e.add_argument("--stop-first", action="store_true",
                   help="stop once a failing seed is found and every smaller seed has run")
    e.add_argument("--depth", type=_jobs, metavar="D", help="PCT depth (default: the scenario's run.pct_depth)")
    e.add_argument("--jobs", "-j", type=_jobs, metavar="N", help="seeds run at once (default: one per core)")
    e.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler, e.g. tcp://host:8786")
    e.add_argument("--out", type=Path, help="the exploration directory (default: logs/explore-<scenario name>)")
    e.add_argument("-q", "--quiet", action="store_true", help="no line per failing seed")

    return {"sweep": cmd_sweep, "explore": cmd_explore}


def _scenario_path(name: str) -> Path:
    from ..cli import resolve_scenario_path

    return resolve_scenario_path(name)  # exits 2 with a message if there is no such scenario


@_guard
def cmd_sweep(args: argparse.Namespace) -> int:
    from ._common import ExperimentError, parse_param, parse_seeds
    from .sweep import aggregate, run_sweep

    path = _scenario_path(args.scenario)
    params = [parse_param(p) for p in args.param]
    seeds = parse_seeds(args.seeds) if args.seeds else None
    warmup = 0
    if args.warmup:
        from ..scenario import parse_time

        try:
            warmup = parse_time(args.warmup)
        except ValueError as e:
            raise ExperimentError(f"--warmup: {e}") from None

    def on_point(name: str, res: dict[str, Any], done: int, total: int) -> None:
        if args.quiet:
            return
        err = f": {res['error']}" if res.get("error") else ""
        print(f"[{done}/{total}] {name}: {res['status']}{err}", flush=True)

    sr = run_sweep(path, params, seeds=seeds, out=args.out, jobs=args.jobs, scheduler=args.scheduler,
                   plots=not args.no_plots, x=args.x, warmup=warmup, on_point=on_point)
    how = (f"{sr.ran} run now on {sr.where}" + (f", {sr.skipped} already done" if sr.skipped else "")
           if sr.ran else "all already done")
    print(f"sweep of {path}: {len(sr.rows)} run(s) ({how}) in {sr.wall_s:.1f} s")
    _print_summary(sr, aggregate(sr))
    for r in sr.failed:
        print(f"failed: {r['dir']}: {r['status']}: {r['error']}")
    print(f"table: {sr.dir / 'results.csv'}; summary: {sr.dir / 'summary.csv'}"
          + (f"; plots: {sr.dir / 'plots'}" if any(p.suffix == '.png' for p in sr.files) else ""))
    return 1 if sr.failed else 0


def _print_summary(sr: Any, agg: list[dict[str, Any]]) -> None:
    cols = [p.short for p in sr.params] + ["runs", "failed", "ops/s", "lock wait ms", "contentions", "pgfault",
                                           "remote flush"]
    keys = ["ops_per_sec", "lock_wait_ns", "lock_contentions", "pgfault", "nr_tlb_remote_flush"]
    scale = {"lock_wait_ns": 1e-6}
    rows = []
    for r in agg:
        cells = [str(r[p.path]) for p in sr.params] + [str(r["runs"]), str(r["failed"])]
        for k in keys:
            m, sd = r.get(f"{k}_mean"), r.get(f"{k}_std")
            if m is None:
                cells.append("-")
            else:
                f = scale.get(k, 1.0)
                cells.append(_num(m * f) + (f" ± {_num(sd * f)}" if sd else ""))
        rows.append(cells)
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))


def _num(v: float) -> str:
    """A figure for the summary: thousands separated above 1000, 3-4 significant digits below."""
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.4g}"


@_guard
def cmd_explore(args: argparse.Namespace) -> int:
    from ._common import parse_seeds
    from .explore import run_explore

    path = _scenario_path(args.scenario)
    seeds = parse_seeds(args.seeds)

    shown = [0]

    def on_seed(seed: int, r: dict[str, Any], done: int, total: int) -> None:
        if args.quiet or r["kind"] is None:
            return
        shown[0] += 1
        if shown[0] <= 5:
            print(f"seed {seed}: {r['status']} ({r['kind']}): {r['error']}", flush=True)
        elif shown[0] == 6:
            print("(further failing seeds: see explore.csv)", flush=True)

    res = run_explore(path, seeds, check=args.check, stop_first=args.stop_first, out=args.out, jobs=args.jobs,
                      scheduler=args.scheduler, depth=args.depth, on_seed=on_seed)
    n = len(res.seeds_run)
    span = f"{res.seeds_run[0]}..{res.seeds_run[-1]}" if n else "none"
    print(f"explored {n} seed(s) ({span}) of {path} with the PCT schedule on {res.where} in {res.wall_s:.1f} s"
          + (" (stopped at the first failure)" if res.stopped_early else ""))
    if res.other:
        print(f"{len(res.other)} seed(s) failed otherwise (not counted by --check invariants): "
              f"{', '.join(map(str, res.other[:10]))}{' ...' if len(res.other) > 10 else ''}")
    if res.smallest is None:
        print(f"no seed failed the {args.check} check")
        return 0
    s = res.smallest
    print(f"{len(res.found)} seed(s) failed the {args.check} check; the smallest is {s}")
    print(f"error: {res.results[s]['error']}")
    same = "the replay failed the same way" if res.replay_same else f"the replay differed: {res.replay_error}"
    print(f"run directory: {res.replay_dir} ({same})")
    cmd = res.replay_command or ""
    if Path(args.scenario).resolve() != path.resolve():  # a shipped scenario given by name: say it that way
        cmd = cmd.replace(str(path), args.scenario)
    print(f"replay: {cmd}")
    return 1

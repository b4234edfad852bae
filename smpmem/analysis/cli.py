"""The analysis subcommands of ``python -m smpmem``: analyze, proc, export, compare.

``add_commands(sub)`` adds them to the main parser's subparsers and returns
{name: handler}; each handler takes the parsed arguments and returns the
exit status. Bad input (a directory without run.json, an unknown time, a
missing optional dependency) is one line ``smpmem: …`` on stderr and
status 2; warnings about damaged log lines are printed as
``smpmem: warning: …`` and do not change the status.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from functools import wraps
from pathlib import Path
from typing import Callable

EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


class _Usage(Exception):
    """An input error to report in one line with exit status 2."""


def _guard(fn: Handler) -> Handler:
    """Run a handler: input errors become one stderr line and status 2; damage warnings are printed."""

    @wraps(fn)
    def run(args: argparse.Namespace) -> int:
        from ._reader import DamagedLogWarning, RunDirError
        from .export import ExportError
        from .procfs import NoSnapshotError

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DamagedLogWarning)
            try:
                code = fn(args)
            except (_Usage, RunDirError, ExportError, NoSnapshotError) as e:
                code = _fail(str(e))
            except OSError as e:
                code = _fail(f"{e.filename or ''}: {e.strerror or e}".lstrip(": "))
        for w in caught:
            if issubclass(w.category, DamagedLogWarning):
                print(f"smpmem: warning: {w.message}", file=sys.stderr)
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        return code

    return run


def _fail(msg: str) -> int:
    print(f"smpmem: {msg}", file=sys.stderr)
    return EXIT_USAGE


def add_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> dict[str, Handler]:
    """Add analyze, proc, export and compare to ``sub``; return {command: handler}."""
    a = sub.add_parser("analyze", help="report on a run directory: report.md, report.html, plots/",
                       description="Analyse a finished run: vmstat deltas, reclaim, writeback, lock contention, "
                                   "TLB/IPIs, faults, zone watermarks. Prints the report and writes report.md, "
                                   "report.html (self-contained) and plots/*.png.")
    a.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    a.add_argument("--out", type=Path, help="directory for report.md, report.html and plots/ (default: RUN_DIR)")
    a.add_argument("--no-plots", action="store_true", help="skip the plots (faster; no matplotlib needed)")
    a.add_argument("-q", "--quiet", action="store_true", help="print only the paths written")

    p = sub.add_parser("proc", help="write a procfs tree (end of run, or at a virtual time) for real tools",
                       description="Write the run's /proc files as a directory tree that psutil "
                                   "(psutil.PROCFS_PATH), free and vmstat can read.")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--at", metavar="TIME", help="virtual time, e.g. 15ms, 250us, 1.5s or ns: the latest snapshot "
                                                "at or before it (default: the end of the run)")
    p.add_argument("--out", type=Path, help="directory to write (default: RUN_DIR/procfs, or RUN_DIR/procfs-<ns>)")

    e = sub.add_parser("export", help="export events as ftrace text, Perfetto JSON, CSV or Parquet",
                       description="Export the run's events. ftrace: the kernel's trace file; perfetto: "
                                   "Chrome/Perfetto trace-event JSON; csv/parquet: one row per event.")
    e.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    e.add_argument("--format", "-f", required=True, choices=("ftrace", "perfetto", "csv", "parquet"))
    e.add_argument("--out", "-o", type=Path, metavar="FILE",
                   help="output file, or - for standard output "
                        "(default: RUN_DIR/trace.txt, trace.perfetto.json, events.csv, events.parquet)")
    e.add_argument("--no-irq-info", action="store_true",
                   help="ftrace: no latency-flags column (options/irq-info off; for trace-pagealloc-postprocess.pl)")
    e.add_argument("--compat-writepage", action="store_true",
                   help="ftrace: add pre-5.18 mm_vmscan_writepage lines (for trace-vmscan-postprocess.pl)")

    c = sub.add_parser("compare", help="compare two runs' counters and lock figures",
                       description="Side-by-side vmstat counters, lock figures and run totals of two runs, "
                                   "largest relative differences first.")
    c.add_argument("run_a", type=Path, metavar="RUN_A")
    c.add_argument("run_b", type=Path, metavar="RUN_B")
    c.add_argument("--all", action="store_true", help="also show figures that are equal")
    c.add_argument("--limit", type=int, default=0, metavar="N", help="show at most N rows (default: all)")
    c.add_argument("--out", type=Path, metavar="FILE", help="also write the comparison (Markdown) to FILE")

    return {"analyze": cmd_analyze, "proc": cmd_proc, "export": cmd_export, "compare": cmd_compare}


@_guard
def cmd_analyze(args: argparse.Namespace) -> int:
    from ._reader import load
    from .report import analyze

    run = load(args.run_dir)
    if not args.no_plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise _Usage("plots need matplotlib (pip install 'smpmem[plot]'), or pass --no-plots") from None
    out = args.out or run.dir
    rep = analyze(run, out, plots=not args.no_plots)
    if not args.quiet:
        sys.stdout.write(rep.to_markdown(base=out))
        print()
    print(f"wrote {out / 'report.md'} and {out / 'report.html'}" + ("" if args.no_plots else f" (plots in {out / 'plots'})"))
    if run.damage:
        print(f"smpmem: warning: {len(run.damage)} damaged line(s) of events.jsonl skipped "
              f"(first: line {run.damage[0].line})", file=sys.stderr)
    return 0


@_guard
def cmd_proc(args: argparse.Namespace) -> int:
    from ._fmt import parse_time
    from ._reader import load
    from .procfs import write_proc_tree

    run = load(args.run_dir)
    at = None
    if args.at is not None:
        try:
            at = parse_time(args.at)
        except ValueError as e:
            raise _Usage(f"--at: {e}") from None
    out = args.out
    if out is None:
        out = run.dir / "procfs" if at is None or at >= run.virtual_ns else None
    if out is None:
        from .procfs import pick_source

        ts, _ = pick_source(run, at)
        out = run.dir / f"procfs-{ts}"
    tree = write_proc_tree(run, out, at)
    src = "the end of the run" if tree.source == run.proc_dir else f"snapshot {tree.source.name}"
    print(f"wrote {tree.path}: {len(tree.copied)} file(s) from {src} (t = {tree.ts} ns)"
          + (f"; filled in: {', '.join(tree.filled)}" if tree.filled else ""))
    return 0


@_guard
def cmd_export(args: argparse.Namespace) -> int:
    from ._reader import load
    from .export import export

    run = load(args.run_dir)
    if run.events_path is None:
        raise _Usage(f"{run.dir}: no events.jsonl to export")
    opts = {}
    if args.format == "ftrace":
        opts = {"irq_info": not args.no_irq_info, "compat_writepage": args.compat_writepage}
    elif args.no_irq_info or args.compat_writepage:
        raise _Usage("--no-irq-info and --compat-writepage apply to --format ftrace only")
    unit = {"csv": "row(s) with the header", "parquet": "row(s)", "ftrace": "line(s)",
            "perfetto": "trace event(s)"}[args.format]
    if args.out is not None and str(args.out) == "-":
        # To standard output (a pipe into the kernel's perl scripts); the summary goes to stderr.
        import shutil
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            res = export(run, args.format, Path(tmp) / "out", **opts)
            with open(res.path, "rb") as fh:
                shutil.copyfileobj(fh, sys.stdout.buffer, 1 << 20)
            sys.stdout.buffer.flush()
        print(f"wrote standard output: {res.events} event(s), {res.lines} {unit}"
              + "".join(f"; {n}" for n in res.notes), file=sys.stderr)
        return 0
    res = export(run, args.format, args.out, **opts)
    print(f"wrote {res.path}: {res.events} event(s), {res.lines} {unit}" + "".join(f"; {n}" for n in res.notes))
    return 0


@_guard
def cmd_compare(args: argparse.Namespace) -> int:
    from ._reader import load
    from .compare import compare, render_compare

    a, b = load(args.run_a), load(args.run_b)
    if args.limit < 0:
        raise _Usage("--limit must be 0 (all) or more")
    text = render_compare(a, b, compare(a, b), show_equal=args.all, limit=args.limit)
    sys.stdout.write(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0

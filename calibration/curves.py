"""The model's scaling curves: will-it-scale programs on 1..64 CPUs, processes and threads, as plots.

    .venv/bin/python calibration/curves.py [--cpus 1,2,4,8,16,32,64] [--seeds 3] [--jobs N]

For each program (calibration/curve-<program>.toml) a sweep of
``machine.cpus + process[0].params.tasks`` (as many tasks as CPUs) ×
``process[0].params.mode`` (processes, threads) × seeds, with the PCT
schedule: each seed orders same-instant wake-ups differently, so the error
bars (mean ± stdev) show how much a figure depends on tie-breaking. The
model runs with the default costs (smpmem/sim/costs.py, calibrated:
docs/fidelity.md). Writes, in docs/fidelity/:

- ``<program>.png``: total ops/s against CPUs, both modes, with the ideal
  (the 1-CPU figure times the CPUs); for page_fault1 also threads with
  faults under mmap_lock (``per_vma_lock = false``, kernels before 6.4);
- ``<program>-why.png``: what the knees come from: per lock class, the
  share of the tasks' time spent waiting for it (lock_stat waittime-total /
  (CPUs × run time)), and TLB shootdown IPIs received per operation;
- ``<program>.md``: the same figures as a table.

The sweeps themselves stay in logs/curves/<program>/ (re-running skips done points).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

PROGRAMS = ("page_fault1", "tlb_flush2")
OLD = "threads, mmap_lock faults"  # the extra series: threads with per_vma_lock off (Linux before 6.4)
MODES = ("processes", "threads", OLD)
WARMUP_NS = 1_000_000  # ops/s count from 1 ms: the leader has started every task by then
LOCKS_SHOWN = 5


def sweep(program: str, cpus: list[int], seeds: list[int], jobs: int | None, old_faults: bool = False):
    """The sweep of ``program``; ``old_faults``: threads only, faults under mmap_lock (per_vma_lock off)."""
    from smpmem.experiments import run_sweep

    def tell(name, res, done, total):
        print(f"  [{done}/{total}] {program} {name}: {res['status']}", flush=True)

    params = [f"machine.cpus+process[0].params.tasks={','.join(map(str, cpus))}",
              "process[0].params.mode=threads" if old_faults else "process[0].params.mode=processes,threads",
              "run.schedule=pct"]
    if old_faults:
        params.append("tunables.per_vma_lock=false")
    out = ROOT / "logs" / "curves" / (program + ("-mmap_lock" if old_faults else ""))
    sr = run_sweep(HERE / f"curve-{program}.toml", params, seeds=seeds, out=out, jobs=jobs, plots=False,
                   warmup=WARMUP_NS, on_point=tell)
    if old_faults:
        for r in sr.rows:
            r["process[0].params.mode"] = OLD
    return sr


def series(rows, mode: str, key) -> tuple[list[int], list[float], list[float]]:
    by: dict[int, list[float]] = {}
    for r in rows:
        if r["process[0].params.mode"] == mode and r["status"] == "completed":
            v = key(r)
            if v is not None:
                by.setdefault(r["machine.cpus"], []).append(v)
    xs = sorted(by)
    return xs, [statistics.fmean(by[x]) for x in xs], [statistics.stdev(by[x]) if len(by[x]) > 1 else 0.0
                                                         for x in xs]


def wait_share(r, cls: str) -> float:
    """Share of the tasks' time spent waiting for lock class ``cls``."""
    w = r.get(f"lock:{cls}:wait_ns") or 0
    return w / (r["machine.cpus"] * max(r["virtual_ns"] - WARMUP_NS, 1)) if r.get("virtual_ns") else 0.0


def top_locks(rows) -> list[str]:
    tot: dict[str, float] = {}
    for r in rows:
        for k, v in r.items():
            if k.startswith("lock:") and k.endswith(":wait_ns") and v:
                tot[k[5:-8]] = tot.get(k[5:-8], 0) + v
    return [k for k, _ in sorted(tot.items(), key=lambda kv: -kv[1])[:LOCKS_SHOWN]]


def plot(program: str, rows, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f, ax = plt.subplots(figsize=(6.4, 4.4))
    for mode, style in (("processes", "o-"), ("threads", "s-"), (OLD, "^--")):
        xs, ys, es = series(rows, mode, lambda r: r.get("ops_per_sec"))
        if xs:
            ax.errorbar(xs, ys, yerr=es, fmt=style, capsize=3, label=mode)
            if mode == "processes":
                ax.plot(xs, [ys[0] * x / xs[0] for x in xs], ":", color="grey", label="ideal (1 CPU × CPUs)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    xs = sorted({r["machine.cpus"] for r in rows})
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("CPUs (= tasks)")
    ax.set_ylabel("operations per simulated second (total)")
    ax.set_title(f"{program}: the model's scaling, mean ± stdev over PCT seeds", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    f.tight_layout()
    f.savefig(out / f"{program}.png", dpi=100)
    plt.close(f)

    locks = top_locks(rows)
    modes = [m for m in MODES if any(r["process[0].params.mode"] == m for r in rows)]
    f, axes = plt.subplots(1, len(modes) + 1, figsize=(4.4 * (len(modes) + 1), 4.2))
    for ax, mode in zip(axes[:-1], modes):
        for cls in locks:
            xs, ys, es = series(rows, mode, lambda r, c=cls: wait_share(r, c))
            if any(ys):
                ax.errorbar(xs, [100 * y for y in ys], yerr=[100 * e for e in es], marker="o", capsize=2,
                            label=cls)
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel("CPUs")
        ax.set_ylabel("% of task time waiting for the lock")
        ax.set_title(f"{mode}: lock_stat wait share", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax = axes[-1]
    for mode, style in (("processes", "o-"), ("threads", "s-"), (OLD, "^--")):
        if mode not in modes:
            continue
        xs, ys, es = series(rows, mode, lambda r: (r.get("nr_tlb_remote_flush_received") or 0) / max(r["ops"], 1))
        ax.errorbar(xs, ys, yerr=es, fmt=style, capsize=2, label=mode)
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("CPUs")
    ax.set_ylabel("shootdown IPIs received per operation")
    ax.set_title("TLB: nr_tlb_remote_flush_received / ops", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    f.tight_layout()
    f.savefig(out / f"{program}-why.png", dpi=100)
    plt.close(f)


def table(program: str, rows) -> str:
    locks = top_locks(rows)
    head = ["mode", "CPUs", "ops/s total", "ops/s per task", "vs ideal"] + [f"wait % {c}" for c in locks] + \
        ["IPIs/op", "remote flushes/op"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for mode in MODES:
        xs, ops, _ = series(rows, mode, lambda r: r.get("ops_per_sec"))
        if not xs:
            continue
        for i, x in enumerate(xs):
            rs = [r for r in rows if r["process[0].params.mode"] == mode and r["machine.cpus"] == x
                  and r["status"] == "completed"]

            def mean(fn):
                return statistics.fmean(fn(r) for r in rs)

            cells = [mode, str(x), f"{ops[i]:,.0f}", f"{ops[i] / x:,.0f}", f"{ops[i] / (ops[0] * x / xs[0]):.2f}"]
            cells += [f"{100 * mean(lambda r, c=c: wait_share(r, c)):.1f}" for c in locks]
            cells += [f"{mean(lambda r: (r.get('nr_tlb_remote_flush_received') or 0) / max(r['ops'], 1)):.3f}",
                      f"{mean(lambda r: (r.get('nr_tlb_remote_flush') or 0) / max(r['ops'], 1)):.3f}"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpus", default="1,2,4,8,16,32,64")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int)
    ap.add_argument("--programs", default=",".join(PROGRAMS))
    args = ap.parse_args(argv)
    cpus = [int(c) for c in args.cpus.split(",")]
    out = ROOT / "docs" / "fidelity"
    out.mkdir(parents=True, exist_ok=True)
    for program in args.programs.split(","):
        sr = sweep(program, cpus, list(range(1, args.seeds + 1)), args.jobs)
        if program == "page_fault1":
            sr.rows += sweep(program, cpus, list(range(1, args.seeds + 1)), args.jobs, old_faults=True).rows
        failed = [r for r in sr.rows if r["status"] != "completed"]
        for r in failed:
            print(f"  failed: {r['dir']}: {r['error']}")
        plot(program, sr.rows, out)
        (out / f"{program}.md").write_text(table(program, sr.rows))
        print((out / f"{program}.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

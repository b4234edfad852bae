"""Calibrate smpmem's cost model against the machine this runs on.

    .venv/bin/python calibration/calibrate.py [--quick] [--out calibration/measured.json]

1. Builds the C programs of this directory with gcc (into calibration/build/).
2. Measures: ``micro`` (syscall, 4 KiB memset/memcpy into cold memory, an
   uncontended lock, a cache line bouncing between two CPUs, context switch,
   cross-CPU wake-up, an IPI round trip by membarrier) and the
   will-it-scale-like programs (``page_fault1``, ``page_fault_read``,
   ``mmap1``, ``tlb_flush2``) with 1 task and with 2 tasks as processes and
   as threads, each with the deltas of /proc/vmstat and /proc/interrupts.
   Every figure is the best of several runs: other work on the machine only
   ever adds time.
3. Derives costs: the micro figures give their costs directly (syscall_entry,
   clear_page, copy_page, lock_acquire, cacheline_bounce, context_switch,
   ipi_send + ipi_latency + ipi_handle); the model then fits the rest one at a
   time against a single-task program: the model's nanoseconds per operation
   are linear in each cost when nothing contends, so two model runs (the cost
   at 0 and at 1000 ns) give its slope and the value that matches the
   measurement (fault_entry from page_fault_read: a fault that allocates
   and clears nothing; then pcp_list_op from page_fault1; then
   tlb_flush_one from tlb_flush2). A fit outside a plausible range for the
   operation the cost stands for is reported and not adopted.
4. Validates: every program, 1 and 2 tasks, processes and threads, in the
   model with the derived costs against the measurement.
5. Writes ``measured.json``: the machine, every raw figure, the derived costs
   with their sources and the defaults they replace, the validation table.

The defaults in smpmem/sim/costs.py are edited by hand from measured.json
(docs/fidelity.md says which and why); this script never edits code.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

PROGRAMS = ("page_fault1", "page_fault_read", "mmap1", "tlb_flush2", "micro")
MICRO = ("syscall", "memset4k", "memcpy4k", "lock", "bounce", "ctxsw", "wakeup", "ipi")
MiB = 1 << 20
# MEMSIZE of the C runs: will-it-scale's (128 MiB; tlb_flush2's is 1 MiB). At 128 MiB the pages a
# fault clears are cold in the cache, as the model's clear_page (measured cold) assumes.
WIS = {"page_fault1": 128 * MiB, "page_fault_read": 128 * MiB, "mmap1": 128 * MiB, "tlb_flush2": 1 * MiB}
# MEMSIZE of the model runs: the same, so that threads share page-table pages (and their locks)
# exactly as the C programs' threads do.
MODEL_SIZE = dict(WIS)
# A fitted cost outside these bounds is reported, not adopted: the residual it would absorb is work
# the model does not price, not the operation the cost stands for.
# tlb_flush_one stands for one INVLPG: tens to a few hundred cycles.
PLAUSIBLE = {"fault_entry": (100, 5000), "pcp_list_op": (10, 300), "tlb_flush_one": (20, 300)}
# Which figure of a micro test to use: the best run, except where the runs split into regimes and
# the best is not the one the model means (bounce: 60 ns when the two vCPUs are SMT siblings,
# 180 ns when they are separate cores; the model's CPUs are separate cores).
PICK = {"bounce": "median"}
# Passes of each program's outer loop in the model: the tasks then exit by themselves (each
# operation carries its share of the munmap, and no run ends by killing a task half-way through one).
MODEL_ITER = {"page_fault1": 2, "page_fault_read": 2, "mmap1": 300, "tlb_flush2": 8}
MODEL_NS = 10_000_000_000  # a cap on virtual time only
# The measured kernel (6.x) takes page faults under per-VMA locks (CONFIG_PER_VMA_LOCK), not mmap_lock.
MODEL_TUNABLES = {"per_vma_lock": True}
IPI_SPLIT = {"ipi_send": 300, "ipi_latency": 1000, "ipi_handle": 400}  # the defaults' proportions


# --- building and running the C programs ------------------------------------------------------------------

def build(out: Path) -> None:
    out.mkdir(exist_ok=True)
    for name in PROGRAMS:
        src = HERE / f"{name}.c"
        exe = out / name
        if exe.exists() and exe.stat().st_mtime > max(src.stat().st_mtime, (HERE / "harness.h").stat().st_mtime):
            continue
        subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-pthread", "-o", str(exe), str(src)], check=True)


def run_json(cmd: list[str]) -> dict[str, Any]:
    p = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def micro(bin_dir: Path, test: str, repeats: int) -> dict[str, Any]:
    return run_json([str(bin_dir / "micro"), test, "-r", str(repeats)])


def wis(bin_dir: Path, prog: str, tasks: int, mode: str, seconds: float, repeats: int) -> dict[str, Any]:
    """The best of ``repeats`` runs: the lowest CPU time per operation, with every run's figures.

    CPU time (schedstat) rather than wall time: on a machine shared with other work the tasks
    wait for CPUs, which inflates wall time but not CPU time. ``concurrency`` says how many
    CPUs the tasks actually used at once on average.
    """
    runs = [run_json([str(bin_dir / prog), "-t", str(tasks), "-m", mode, "-s", str(seconds),
                      "-z", str(WIS[prog])]) for _ in range(repeats)]
    best = min(runs, key=lambda r: r["cpu_ns_per_op"])
    best["all_cpu_ns_per_op"] = [round(r["cpu_ns_per_op"], 1) for r in runs]
    best["all_ns_per_op_per_task"] = [round(r["ns_per_op_per_task"], 1) for r in runs]
    best["all_concurrency"] = [round(r["concurrency"], 2) for r in runs]
    return best


# --- the model ---------------------------------------------------------------------------------------------

def model_program(prog: str) -> dict[str, Any]:
    """The [[process]] table that runs ``prog`` in the model (a built-in, or page_fault_read's steps)."""
    if prog != "page_fault_read":
        return {"name": "wis", "builtin": prog, "params": {"size": MODEL_SIZE[prog], "iterations": MODEL_ITER[prog]}}
    each = {"op": "for_each", "region": "c", "name": "page", "stride": 4096,
            "body": [{"op": "touch", "region": "page", "write": False}, {"op": "ops", "n": 1}]}
    return {"name": "wis", "program": [{"op": "ops", "n": 0}, {"op": "loop", "count": MODEL_ITER[prog], "body": [
        {"op": "mmap", "name": "c", "size": MODEL_SIZE[prog]}, each, {"op": "munmap", "region": "c"}]},
        {"op": "ops", "n": 0, "done": True}]}


def model_run(prog: str, costs: dict[str, int], tasks: int = 1, mode: str = "processes") -> dict[str, Any]:
    """Run ``prog`` in the model with ``tasks`` tasks on as many CPUs; ns per operation per task and figures."""
    import tempfile

    from smpmem.experiments.explore import dump_toml
    from smpmem.run import run_scenario
    from smpmem.scenario import parse_scenario
    from smpmem.workload.wis import ops_per_sec

    proc = model_program(prog)
    if "builtin" in proc:
        proc["params"].update({"tasks": tasks, "mode": mode})
    elif tasks > 1:
        body = proc["program"]
        proc["program"] = ([{"op": "spawn_threads", "count": tasks, "program": body}] if mode == "threads"
                           else [{"op": "fork", "program": body} for _ in range(tasks)])
    data = {"name": f"cal-{prog}", "machine": {"cpus": tasks, "ram": "1GiB"},
            "tunables": dict(MODEL_TUNABLES),
            "run": {"duration": MODEL_NS, "events": [], "debug_vm": False},
            "costs": dict(costs), "process": [proc]}
    sc = parse_scenario(dump_toml(data), "<calibration>")
    with tempfile.TemporaryDirectory() as d:
        res = run_scenario(sc, out_dir=Path(d) / "run")
    if res.status != "completed":
        raise RuntimeError(f"model run of {prog} failed: {res.error}")
    w = ops_per_sec(res)
    vm = res.kernel.vmstat
    return {"ns_per_op_per_task": tasks * 1e9 / w.total, "ops": w.ops,
            "nr_tlb_remote_flush_received": vm.get("nr_tlb_remote_flush_received", 0),
            "pgfault": vm.get("pgfault", 0)}


def fit(prog: str, param: str, measured_ns: float, costs: dict[str, int]) -> dict[str, Any]:
    """The value of ``param`` that makes the model's single-task ns/op of ``prog`` equal ``measured_ns``."""
    lo = model_run(prog, {**costs, param: 0})["ns_per_op_per_task"]
    hi = model_run(prog, {**costs, param: 1000})["ns_per_op_per_task"]
    slope = (hi - lo) / 1000  # times the cost is paid per operation
    value = (measured_ns - lo) / slope if slope > 0 else float("nan")
    return {"param": param, "program": prog, "measured_ns_per_op": round(measured_ns, 1),
            "model_ns_per_op_without": round(lo, 1), "paid_per_op": round(slope, 4), "value": value}


# --- the whole calibration --------------------------------------------------------------------------------

def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"uname": " ".join(platform.uname()), "cpus": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
        info["hypervisor"] = " hypervisor" in flags
        info["pcid"] = " pcid" in flags
    except (OSError, StopIteration):
        pass
    info["loadavg_before"] = Path("/proc/loadavg").read_text().split()[:3]
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer and shorter runs (a smoke test)")
    ap.add_argument("--out", type=Path, default=HERE / "measured.json")
    ap.add_argument("--no-model", action="store_true", help="measure only; no fits, no validation")
    ap.add_argument("--reuse", type=Path, metavar="JSON",
                    help="take the measurements from an earlier measured.json; redo only the fits and validation")
    args = ap.parse_args(argv)
    repeats, seconds, mrep = (2, 0.3, 3) if args.quick else (5, 1.0, 9)

    from smpmem.sim.costs import DEFAULT_COSTS

    t0 = time.time()
    if args.reuse:
        old = json.loads(args.reuse.read_text())
        out: dict[str, Any] = {k: old[k] for k in ("machine", "when", "micro", "programs")}
        m, progs = out["micro"], out["programs"]
        print(f"measurements from {args.reuse} ({out['when']})", flush=True)
    else:
        bin_dir = HERE / "build"
        build(bin_dir)
        out = {"machine": machine_info(), "when": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        print("micro:", flush=True)
        m = {}
        for t in MICRO:
            m[t] = micro(bin_dir, t, mrep)
            print(f"  {t:10s} {m[t]['ns']:>10} ns   runs {m[t].get('runs')}", flush=True)
        out["micro"] = m
        print("programs (ns per operation: CPU time, and wall time per task; best of runs):", flush=True)
        progs = {}
        for prog in WIS:
            for tasks, mode in ((1, "processes"), (2, "processes"), (2, "threads")):
                r = wis(bin_dir, prog, tasks, mode, seconds, repeats)
                progs[f"{prog}/{tasks}/{mode}"] = r
                print(f"  {prog:16s} {tasks} {mode:9s} cpu {r['cpu_ns_per_op']:9.1f}  "
                      f"wall {r['ns_per_op_per_task']:9.1f}  concurrency {r['concurrency']:.2f}  "
                      f"cpu runs {r['all_cpu_ns_per_op']}  TLB IPIs {r['interrupts']['TLB']}", flush=True)
        out["programs"] = progs
        out["machine"]["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]

    d0 = DEFAULT_COSTS.as_dict()
    derived: dict[str, dict[str, Any]] = {}

    def put(name: str, value: float, source: str) -> None:
        derived[name] = {"value": max(int(round(value)), 0), "default": d0[name], "source": source}

    put("syscall_entry", m["syscall"]["ns"], "micro syscall: getppid()")
    put("clear_page", m["memset4k"]["ns"], "micro memset4k: 4 KiB memset into cold memory")
    put("copy_page", m["memcpy4k"]["ns"], "micro memcpy4k: 4 KiB memcpy between cold buffers")
    put("lock_acquire", m["lock"]["ns"], "micro lock: uncontended lock cmpxchg + release store")
    if m["bounce"].get("ns") is not None:
        put("cacheline_bounce", m["bounce"][PICK["bounce"]],
            f"micro bounce: one-way transfer of a line CPU0<->CPU1 ({PICK['bounce']} of the runs)")
    put("context_switch", m["ctxsw"]["ns"] - 2 * m["syscall"]["ns"],
        "micro ctxsw: one-way pipe ping-pong on one CPU, minus two syscalls")
    sent = statistics.median(m["ipi"].get("ipis_per_call") or [0.0])
    not_adopted: dict[str, Any] = {}
    if m["ipi"].get("ns") is not None and sent >= 0.9:
        total = m["ipi"]["median"]
        for k, share in IPI_SPLIT.items():
            put(k, total * share / sum(IPI_SPLIT.values()),
                f"micro ipi: membarrier IPI round trip {total:.0f} ns (median), split {share}/{sum(IPI_SPLIT.values())}")
    else:
        not_adopted["ipi_send+ipi_latency+ipi_handle"] = {
            "value": m["ipi"].get("median"), "ipis_per_call": sent,
            "default": sum(d0[k] for k in IPI_SPLIT),
            "why": f"the kernel sent an IPI (/proc/interrupts CAL) for only {sent:.1%} of the membarrier calls, "
                   f"so the time difference is not an IPI round trip: not measurable on this machine"}
    out["measured_not_adopted"] = not_adopted
    out["measured_not_adopted"].update({
        "sleep_wakeup": {"value": m["wakeup"].get("ns"), "default": d0["sleep_wakeup"],
                         "why": "one-way pipe wake-up across CPUs: dominated by waking an idle vCPU through the "
                                "hypervisor (halt polling is off on this VM), not try_to_wake_up"},
    })
    if not args.no_model:
        costs = {k: v["value"] for k, v in derived.items()}
        fits = []
        # vma_op is not fitted: the model pays it on every fault (find_vma) as well as in mmap/munmap,
        # so fitting it to mmap1 would load mmap's unmodelled overheads onto every fault.
        # pcp_list_op from page_fault1 once fault_entry is known: what a write fault costs beyond a read
        # fault, less clear_page, is the page's allocation and freeing (prep_new_page, memcg charge,
        # free_unref_folios ...), which the model prices only as per-CPU list operations.
        for prog, param in (("page_fault_read", "fault_entry"), ("page_fault1", "pcp_list_op"),
                            ("tlb_flush2", "tlb_flush_one")):
            f = fit(prog, param, progs[f"{prog}/1/processes"]["cpu_ns_per_op"], costs)
            lo, hi = PLAUSIBLE[param]
            f["adopted"] = bool(lo <= f["value"] <= hi)
            fits.append(f)
            print(f"fit {param:14s} from {prog:15s}: {f['value']:8.1f} ns (paid {f['paid_per_op']}x per op)"
                  + ("" if f["adopted"] else f"  NOT ADOPTED: outside {lo}..{hi} ns"), flush=True)
            if f["adopted"]:
                put(param, f["value"], f"fit: model {prog} (1 task) = measured CPU time per operation")
                costs[param] = derived[param]["value"]
            else:
                out["measured_not_adopted"][param] = {
                    "value": round(f["value"], 1), "default": d0[param],
                    "why": f"the fit to {prog} is outside {lo}..{hi} ns: the residual is work on that path the "
                           f"model does not price, not what {param} stands for"}
        out["fits"] = fits
        rows = []
        print("validation (ns per operation per task): measured CPU, measured wall / model", flush=True)
        for key, r in progs.items():
            prog, tasks, mode = key.split("/")
            mr = model_run(prog, costs, int(tasks), mode)
            row = {"program": prog, "tasks": int(tasks), "mode": mode,
                   "measured_cpu": round(r["cpu_ns_per_op"], 1), "measured_wall": round(r["ns_per_op_per_task"], 1),
                   "concurrency": round(r["concurrency"], 2), "model": round(mr["ns_per_op_per_task"], 1),
                   "error_pct": round(100 * (mr["ns_per_op_per_task"] / r["cpu_ns_per_op"] - 1), 1),
                   "measured_tlb_ipis_per_op": round(r["interrupts"]["TLB"] / max(r["ops"], 1), 4),
                   "model_tlb_ipis_per_op": round(mr["nr_tlb_remote_flush_received"] / max(mr["ops"], 1), 4)}
            rows.append(row)
            print(f"  {prog:16s} {tasks} {mode:9s} {row['measured_cpu']:9.1f} {row['measured_wall']:9.1f} "
                  f"(x{row['concurrency']:.2f}) / {row['model']:9.1f} ({row['error_pct']:+.1f}% vs CPU)  IPIs/op "
                  f"{row['measured_tlb_ipis_per_op']} / {row['model_tlb_ipis_per_op']}", flush=True)
        out["validation"] = rows
    out["derived"] = derived
    out["wall_s"] = round(time.time() - t0, 1)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Swap (smpmem/mm/swap.py): slots and clusters, the swap cache, swap I/O, do_swap_page, swapoff, device errors."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from reclaim_support import boot, machine, run_threads, run_toml  # noqa: E402

from smpmem.mm import swap as S  # noqa: E402
from smpmem.proc.meminfo import render_meminfo  # noqa: E402


def thrash(procs: int, size: str, loops: int = 3, extra: str = "") -> str:
    """``procs`` processes each writing a ``size`` region, touching it at random, then reading all of it back."""
    return f'''
[[process]]
name = "thrash"
count = {procs}
{extra}
program = [
  {{ op = "mmap", name = "ws", size = "{size}" }},
  {{ op = "touch", region = "ws", write = true }},
  {{ op = "loop", count = {loops}, body = [
      {{ op = "touch", region = "ws", pattern = "random", count = 512, write = true }},
      {{ op = "touch", region = "ws", pattern = "random", count = 1024 }},
  ] }},
  {{ op = "touch", region = "ws" }},
]
'''


class TestThrash:
    def test_thrashing_keeps_every_token(self, tmp_path: Path) -> None:
        """Working sets larger than RAM swap out and back in; every read finds the token written last."""
        res, c, _ = run_toml(tmp_path, machine(ram="48MiB", swap="64MiB", cpus=2) + thrash(2, "20MiB"),
                             events="vmscan:*")
        assert (res.status, res.error) == ("completed", None), res.reason
        assert c["pswpout"] > 1000 and c["pswpin"] > 1000 and c["pgmajfault"] > 100
        assert all(p.exit_code in (None, 0) for p in res.kernel.processes.values())
        sw = res.kernel.swap
        assert S.check_swap_full(res.kernel) is None
        # Everything exited: no slot is referenced by a PTE any more, and the swap cache let go of the
        # pages the exits unmapped (free_pages_and_swap_cache); only pages under swap-out or locked at
        # that instant stay cached (9 of the 630 swap cache pages the processes had mapped or read ahead).
        assert all(v in (0, S.SWAP_HAS_CACHE, S.SWAP_MAP_BAD) for si in sw.swap_info for v in si.swap_map)
        assert sum(v == S.SWAP_HAS_CACHE for si in sw.swap_info for v in si.swap_map) < 16

    def test_a_swap_file_keeps_every_token(self, tmp_path: Path) -> None:
        """A swap file (a path not under /dev/) is a file of the disk's filesystem: swap I/O goes to the
        sectors of its extents, inside the filesystem, and thrashing through it loses nothing."""
        text = machine(ram="48MiB", swap="64MiB", cpus=2, swap_name="/swapfile", files={"/data": "8MiB"})
        res, c, recs = run_toml(tmp_path, text + thrash(2, "20MiB"), events="block:block_rq_issue")
        assert (res.status, res.error) == ("completed", None), res.reason
        assert c["pswpout"] > 1000 and c["pswpin"] > 1000
        k = res.kernel
        area = k.block.swap_areas["/swapfile"]
        (si,) = [s for s in k.swap.swap_info if s is not None]
        assert si.is_file and area.is_file
        fs = k.block.default_fs
        part = fs.part
        data_end = fs.bmap(fs.inodes[fs.by_path["/data"]], 2047) + 8  # the last sector of /data, exclusive
        first, last = area.sector_of(1), area.sector_of(si.max - 1) + 8
        assert data_end <= area.sector_of(0) and last <= part.start + part.nr_sectors  # after /data, in sda1
        sectors = {r["sector"] for r in recs if r["event"] == "block_rq_issue" and r["rwbs"][0] == "W"}
        assert sectors and all(first <= x < last for x in sectors)  # every write was swap-out, to the file
        assert "/swapfile" not in k.block.namespace  # the file steps cannot open an active swap file
        assert (area.major, area.minor) == (8, 1)  # swap I/O goes to the filesystem's partition, sda1
        from smpmem.proc.swaps import render_swaps

        line = render_swaps(k).splitlines()[1]
        assert line.startswith("/swapfile" + " " * 31 + "file\t\t65532\t"), line

    def test_swap_cache_and_readahead(self, tmp_path: Path) -> None:
        """Swap-in reads a cluster of 2^page_cluster slots; faults on readahead pages are hits without I/O."""
        res, c, _ = run_toml(tmp_path, machine(ram="48MiB", swap="64MiB", cpus=2) + thrash(2, "20MiB"), events=None)
        assert c["swap_ra"] > 0 and c["swap_ra_hit"] > 0
        assert c["pswpin"] == c["pgmajfault"] + c["swap_ra"]
        res0, c0, _ = run_toml(tmp_path / "noreadahead",
                               machine(ram="48MiB", swap="64MiB", cpus=2, tunables="page_cluster = 0")
                               + thrash(2, "20MiB"), events=None)
        assert c0["swap_ra"] == 0 and c0["pswpin"] == c0["pgmajfault"] > 0


SCATTER = """
[[process]]
name = "scatter"
program = [
  { op = "mmap", name = "ws", size = "16MiB" },
  { op = "touch", region = "ws", pattern = "random", count = 8192, write = true },
  { op = "mmap", name = "push", size = "24MiB" },
  { op = "touch", region = "push", write = true },
  { op = "touch", region = "ws" },
]
"""


class TestReadahead:
    def test_swapin_nr_pages_window(self) -> None:
        """__swapin_nr_pages: no hits gives 2 next to the last access, else 1; hits + 2 rounded up to a power of
        two (at least 4), capped; never below half the last window."""
        f = S.__dict__["__swapin_nr_pages"]
        assert f(10, 11, 0, 8, 0) == 2 and f(10, 9, 0, 8, 0) == 2 and f(10, 50, 0, 8, 0) == 1
        assert f(0, 50, 1, 8, 0) == 4 and f(0, 50, 3, 8, 0) == 8 and f(0, 50, 30, 8, 0) == 8
        assert f(10, 50, 0, 8, 8) == 4 and f(0, 50, 3, 32, 0) == 8 and f(0, 50, 7, 32, 0) == 16

    def test_vma_readahead_reads_address_neighbours(self, tmp_path: Path) -> None:
        """Pages written in random order land in swap slots in that order; read back in address order, VMA
        readahead (the default) brings the PTE neighbours in and nearly every one is used, while cluster
        readahead (vma_ra_enabled = false) finds its slot neighbours useless and shrinks its window to 1."""
        def run(vma: str, d: Path) -> dict[str, int]:
            text = machine(ram="32MiB", swap="64MiB", cpus=1, tunables=f"vma_ra_enabled = {vma}") + SCATTER
            res, c, _ = run_toml(d, text, events=None)
            assert (res.status, res.error) == ("completed", None)
            assert c["pswpin"] == c["pgmajfault"] + c["swap_ra"]  # each read: a fault's own page or read ahead
            return c

        v, c = run("true", tmp_path / "vma"), run("false", tmp_path / "cluster")
        assert v["swap_ra"] > 0.5 * v["pgmajfault"] and v["swap_ra_hit"] >= 0.9 * v["swap_ra"]
        assert c["swap_ra"] < 0.1 * c["pgmajfault"]

    def test_a_rotating_swap_disk_turns_vma_readahead_off(self) -> None:
        """A swap area on an "hdd" disk counts in nr_rotate_swap: swapin_readahead goes by swap slot."""
        ssd = boot(machine(ram="32MiB", swap="16MiB"))
        hdd = boot(machine(ram="32MiB", swap="16MiB", disk_extra='preset = "hdd"'))
        off = boot(machine(ram="32MiB", swap="16MiB", tunables="vma_ra_enabled = false"))
        assert (ssd.swap.nr_rotate_swap, hdd.swap.nr_rotate_swap) == (0, 1)
        assert [S.swap_use_vma_readahead(k) for k in (ssd, hdd, off)] == [True, False, False]


class TestSlots:
    def test_cluster_allocation(self) -> None:
        """A CPU allocates consecutive slots from its own cluster; another CPU gets another cluster; frees go back."""
        k = boot(machine(ram="32MiB", swap="8MiB", cpus=2))
        si = k.swap.swap_info[0]
        assert si.pages == 8 * 256 - 1 and k.swap.total_swap_pages == si.pages == k.swap.nr_swap_pages
        a = [S.scan_swap_map_slots(si, 0, S.SWAP_HAS_CACHE) for _ in range(4)]
        b = [S.scan_swap_map_slots(si, 1, S.SWAP_HAS_CACHE) for _ in range(2)]
        assert a == [256, 257, 258, 259]  # a free cluster first (cluster 0 holds the header page)
        assert b == [512, 513]  # CPU 1 takes the next free cluster
        assert si.inuse_pages == 6
        for off in a + b:
            S._entry_free_locked(k.swap, si, off)
        k.swap.nr_swap_pages -= 6  # the frees above gave back slots scan_swap_map_slots never took from it
        assert si.inuse_pages == 0 and S.check_swap_full(k) is None

    def test_area_fills_then_fragmented_slots(self) -> None:
        """When no cluster is free a CPU takes any free slot; a full area returns 0."""
        k = boot(machine(ram="32MiB", swap="2MiB", cpus=2))
        si = k.swap.swap_info[0]
        got = [S.scan_swap_map_slots(si, i % 2, 1) for i in range(si.pages)]
        assert sorted(got) == list(range(1, si.pages + 1))
        assert S.scan_swap_map_slots(si, 0, 1) == 0

    def test_priorities(self) -> None:
        """Slots come from the highest-priority area; equal priorities take turns (plist_requeue)."""
        extra = ('[[machine.swap]]\nname = "/dev/sda3"\nsize = "8MiB"\npriority = 5\n'
                 '[[machine.swap]]\nname = "/dev/sda4"\nsize = "8MiB"\npriority = 5\n')
        k = boot(machine(ram="32MiB", swap="8MiB", cpus=1, disk_extra="") + "\n" + extra)
        names = [si.name for si in k.swap.avail]
        assert names[:2] in (["/dev/sda3", "/dev/sda4"], ["/dev/sda4", "/dev/sda3"]) and names[2] == "/dev/sda2"

        async def take(th):  # type: ignore[no-untyped-def]
            return [S.swp_type(await S.get_swap_pages(th)) for _ in range(4)]

        types = run_threads(k, take)[0]
        by_name = {si.type: si.name for si in k.swap.swap_info}
        assert [by_name[t] for t in types] == ["/dev/sda3", "/dev/sda4", "/dev/sda3", "/dev/sda4"]
        assert k.swap.swap_info[0].inuse_pages == 0


class TestFigures:
    def test_meminfo_swap_lines(self, tmp_path: Path) -> None:
        """SwapTotal is the area less its header page; SwapFree and SwapCached follow the slots and the cache."""
        k = boot(machine(ram="32MiB", swap="64MiB"))
        text = render_meminfo(k)
        assert "SwapTotal:         65532 kB" in text and "SwapFree:          65532 kB" in text
        res, c, _ = run_toml(tmp_path, machine(ram="48MiB", swap="64MiB", run='duration = "300ms"') + '''
[[process]]
name = "hold"
program = [ { op = "mmap", name = "a", size = "40MiB" }, { op = "touch", region = "a", write = true },
            { op = "sleep", ns = "1s" } ]
''', events=None)
        lines = dict(ln.split(":", 1) for ln in (tmp_path / "run" / "proc" / "meminfo").read_text().splitlines())
        total, free = (int(lines[f].split()[0]) for f in ("SwapTotal", "SwapFree"))
        assert total == 65532 and 0 < free < total  # the snapshot before the run's end: swap in use
        assert res.kernel.swap.nr_swap_pages == res.kernel.swap.total_swap_pages  # all back after the teardown


class TestSwapoff:
    def test_swapoff_brings_every_page_back(self) -> None:
        """swapoff swaps every PTE of the area back in, empties its cache and takes it out of use; tokens intact."""
        from smpmem.workload import start_processes

        text = machine(ram="48MiB", swap="64MiB", cpus=2) + '''
[[process]]
name = "keeper"
program = [ { op = "mmap", name = "a", size = "14MiB" }, { op = "touch", region = "a", write = true },
            { op = "sleep", ns = "400ms" }, { op = "touch", region = "a" } ]
[[process]]
name = "pusher"
program = [ { op = "mmap", name = "b", size = "24MiB" }, { op = "touch", region = "b", write = true },
            { op = "touch", region = "b" } ]
'''
        k = boot(text)
        seen: dict[str, int] = {}

        async def admin(th):  # type: ignore[no-untyped-def]
            await th.sleep_for(300_000_000)
            seen["used_before"] = k.swap.swap_info[0].inuse_pages
            seen["ret"] = await S.sys_swapoff(th, "/dev/sda2")
            seen["used_after"] = k.swap.swap_info[0].inuse_pages

        import trio

        def setup(_):  # type: ignore[no-untyped-def]
            start_processes(k)
            from smpmem.sim import Thread

            k.start_thread(Thread(k, k.alloc_pid(), "swapoff"), admin)

        status = trio.run(lambda: k.run(setup))
        assert k.sim.failure is None and status == "completed"
        assert seen["used_before"] > 0 and seen["ret"] == 0 and seen["used_after"] == 0
        assert k.swap.total_swap_pages == k.swap.nr_swap_pages == 0
        assert not k.swap.swap_info[0].flags & S.SWP_USED
        assert all(p.exit_code in (None, 0) for p in k.processes.values())
        assert S.check_swap_full(k) is None


class TestDeviceErrors:
    def test_write_errors_keep_pages_in_memory(self, tmp_path: Path) -> None:
        """Slots on bad sectors fail to write: the folios are redirtied and stay; nothing is lost, nothing hangs."""
        # A 256 MiB disk with its 64 MiB swap area at the top: slot n is sector 393216 + 8n.
        bad = [393216 + 8 * n for n in range(1, 300, 3)] + [393216 + 8 * 256 * 2 + 8 * n for n in range(0, 256, 2)]
        disk = f'size = "256MiB"\nerror_sectors = {bad}\n'
        res, c, _ = run_toml(tmp_path, machine(ram="48MiB", swap="64MiB", disk_extra=disk) + thrash(2, "20MiB"),
                             events=None)
        assert (res.status, res.error) == ("completed", None), res.reason
        si = res.kernel.swap.swap_info[0]
        assert si.nr_write_errors > 0 and si.nr_read_errors == 0
        # bio_dev: the swap partition /dev/sda2 (8:2), the sector on the disk
        assert any(m.startswith("Write-error on swap-device (8:2:") for m in res.kernel.swap.errors)
        assert all(p.exit_code in (None, 0) for p in res.kernel.processes.values())

    def test_read_errors_kill_with_sigbus(self, tmp_path: Path) -> None:
        """A swap-in whose read fails gives the faulting process SIGBUS (exit 135); the run goes on."""
        res, c, _ = run_toml(tmp_path, machine(ram="48MiB", swap="64MiB", disk_extra="error_rate = 0.02")
                             + thrash(2, "20MiB"), events=None)
        assert (res.status, res.error) == ("completed", None), res.reason
        si = res.kernel.swap.swap_info[0]
        assert si.nr_write_errors > 0
        codes = sorted(p.exit_code or 0 for p in res.kernel.processes.values())
        if si.nr_read_errors:
            assert 135 in codes
        assert set(codes) <= {0, 135}

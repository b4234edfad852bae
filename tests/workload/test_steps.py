"""The steps added for built-in programs: for_each, ops, madvise (DONTNEED) and kmap (smpmem/workload/_steps.py, _madvise.py, _kmap.py)."""

from pathlib import Path

import orjson
import pytest

from smpmem.run import run_scenario
from smpmem.scenario import ScenarioError, parse_scenario


def run(program: str, tmp_path: Path, machine: str = 'cpus = 1\nram = "256MiB"', events: str = '["*"]'):  # type: ignore[no-untyped-def]
    text = f"[machine]\n{machine}\n[run]\nduration = \"1s\"\nevents = {events}\n[[process]]\nname = \"p\"\nprogram = [\n{program}\n]\n"
    res = run_scenario(parse_scenario(text, "steps.toml"), out_dir=tmp_path)
    assert (res.status, res.error) == ("completed", None), res.reason
    return res, [orjson.loads(line) for line in (tmp_path / "events.jsonl").read_bytes().splitlines()]


def names(events: list[dict], pid: int | None = None) -> list[str]:
    return [e["event"] for e in events if pid is None or e["pid"] == pid]


class TestForEach:
    def test_one_fault_per_piece(self, tmp_path: Path) -> None:
        """for_each over 8 pages writing each piece takes 8 faults at the 8 pages, in address order."""
        res, evs = run('{ op = "mmap", name = "a", size = "32KiB" },\n'
                       '{ op = "for_each", region = "a", name = "pg", body = [ { op = "touch", region = "pg", write = true } ] },',
                       tmp_path)
        faults = [e["address"] for e in evs if e["event"] == "page_fault_user"]
        base = faults[-8]
        assert faults[-8:] == [base + i * 4096 for i in range(8)]

    def test_stride_and_range(self, tmp_path: Path) -> None:
        """stride, offset and size choose the pieces: 2-page pieces of the region's second half."""
        res, evs = run('{ op = "mmap", name = "a", size = "64KiB" },\n'
                       '{ op = "for_each", region = "a", stride = "8KiB", offset = "32KiB", body = [\n'
                       '    { op = "touch", region = "piece", size = "4KiB", write = true } ] },', tmp_path)
        faults = [e["address"] for e in evs if e["event"] == "page_fault_user"][-4:]
        assert [f - faults[0] for f in faults] == [0, 8192, 16384, 24576]

    def test_piece_outside_body_is_an_error(self) -> None:
        """The piece's name exists only inside the body."""
        with pytest.raises(ScenarioError, match="no region named 'piece' is mapped at this point"):
            parse_scenario('[[process]]\nname = "p"\nprogram = [ { op = "mmap", name = "a", size = 8192 },\n'
                           '{ op = "for_each", region = "a", body = [] }, { op = "touch", region = "piece" } ]\n')

    def test_piece_bounds_checked(self) -> None:
        """A step touching beyond its piece is reported at load."""
        with pytest.raises(ScenarioError, match="touches beyond its mapping"):
            parse_scenario('[[process]]\nname = "p"\nprogram = [ { op = "mmap", name = "a", size = 8192 },\n'
                           '{ op = "for_each", region = "a", body = [ { op = "touch", region = "piece", size = 8192 } ] } ]\n')


class TestMadvise:
    def test_dontneed_drops_anon_pages(self, tmp_path: Path) -> None:
        """MADV_DONTNEED frees the range's anonymous pages: a write then faults them in again."""
        res, evs = run('{ op = "mmap", name = "a", size = "64KiB" },\n'
                       '{ op = "touch", region = "a", write = true },\n'
                       '{ op = "madvise", region = "a", offset = "16KiB", size = "16KiB" },\n'
                       '{ op = "touch", region = "a", write = true },', tmp_path)
        faults = [e["address"] for e in evs if e["event"] == "page_fault_user"]
        base = faults[-20]
        assert [a - base for a in faults[-4:]] == [16384, 20480, 24576, 28672]
        frees = [e for e in evs if e["event"] == "mm_page_free"]
        assert len(frees) >= 4

    def test_flush_events(self, tmp_path: Path) -> None:
        """The zap is followed by a TLB flush of the range on this CPU."""
        res, evs = run('{ op = "mmap", name = "a", size = "8KiB" },\n'
                       '{ op = "touch", region = "a", write = true },\n'
                       '{ op = "madvise", region = "a" },', tmp_path)
        assert res.kernel.vmstat["nr_tlb_local_flush_one"] >= 2


class TestKmap:
    PROGRAM = ('{ op = "mmap", name = "a", size = "64KiB" },\n'
               '{ op = "kmap", region = "a", batch = 4 },\n'
               '{ op = "kmap", region = "a", atomic = true },')

    def test_highmem_pages_use_the_pool(self, tmp_path: Path) -> None:
        """On i386 with HighMem, kmap() maps each user page from the pkmap pool and kmap_atomic uses a CPU slot."""
        res, evs = run(self.PROGRAM, tmp_path, 'layout = "i386"\ncpus = 2\nram = "1GiB"')
        n = names(evs)
        assert n.count("kmap_high") == 16 and n.count("kunmap_high") == 16
        assert n.count("kmap_atomic") == 16 and n.count("kunmap_atomic") == 16
        assert res.kernel.highmem.nr_kmap_high == 16

    def test_lowmem_needs_no_mapping(self, tmp_path: Path) -> None:
        """On x86_64 every page is lowmem: kmap costs no pool entry and logs nothing."""
        res, evs = run(self.PROGRAM, tmp_path)
        assert "kmap_high" not in names(evs) and "kmap_atomic" not in names(evs)


class TestOps:
    def test_counts_per_thread(self, tmp_path: Path) -> None:
        """ops steps count per thread; done closes the task's window at that step."""
        res, _ = run('{ op = "ops", n = 0 },\n{ op = "compute", ns = "1ms" },\n{ op = "ops", n = 5, done = true },\n'
                     '{ op = "compute", ns = "1ms" },', tmp_path, events="[]")
        from smpmem.workload.wis import ops_per_sec

        [t] = ops_per_sec(res).tasks
        assert (t.ops, t.window_ns, t.ops_per_sec) == (5, 1_000_000, 5000.0)

"""Block devices (smpmem/mm/block.py): timing, queue depth, error injection, counters, layout, events."""

from __future__ import annotations

import pytest

from filemap_support import disk, fs_kernel, records, run
from smpmem.mm.block import (
    DATA_START_BLOCK,
    PART_START,
    REQ_META,
    REQ_OP_READ,
    REQ_OP_WRITE,
    REQ_RAHEAD,
    REQ_SYNC,
    Bio,
    blk_fill_rwbs,
    device_numbers,
    submit_bio,
    submit_bio_wait,
)
from smpmem.trace.catalog import lookup
from smpmem.trace.ftrace import event_line, parse_line


class _P:
    """A stand-in page: only its token moves."""

    def __init__(self) -> None:
        self.token = None


def read_bio(dev, sector: int, pages: int = 1) -> Bio:
    return Bio(dev, REQ_OP_READ, sector, 8 * pages, [(_P(), sector + 8 * i) for i in range(pages)])


class TestTiming:
    def test_one_read_costs_latency_plus_transfer(self) -> None:
        """A 1 MiB read on the SSD preset takes its 100 us latency plus 1 MiB at 500 MiB/s."""
        k = fs_kernel()
        sda = disk(k)

        async def t(th):
            t0 = th.sim.now
            assert await submit_bio_wait(th, read_bio(sda, 1 << 20, 256)) == 0
            return th.sim.now - t0

        took = run(k, t)[0]
        expect = 100_000 + (1 << 20) * 10**9 // (500 << 20)
        assert expect <= took <= expect + 20_000  # + submission, completion, wake-up costs

    def test_rotating_disk_serialises_random_requests(self) -> None:
        """Depth 1 (hdd): two random reads at once complete one seek after the other; an SSD overlaps them."""
        def two_reads(disk_toml: str) -> list[int]:
            k = fs_kernel(disk=disk_toml, files="")
            dev = disk(k)

            async def t(th, sector):
                await submit_bio_wait(th, read_bio(dev, sector))
                return th.sim.now

            async def a(th):
                return await t(th, 100_000)

            async def b(th):
                return await t(th, 900_000)

            return sorted(run(k, a, b))

        hdd = two_reads('name = "sda"\npreset = "hdd"')
        ssd = two_reads('name = "sda"')
        assert hdd[1] - hdd[0] >= 8_000_000  # the second waits for the first, then seeks
        assert ssd[1] - ssd[0] < 50_000  # both latencies overlap

    def test_sequential_requests_skip_the_seek(self) -> None:
        """A request that starts where the previous one ended pays no positioning latency (hdd streams)."""
        k = fs_kernel(disk='name = "sda"\npreset = "hdd"', files="")
        dev = disk(k)

        async def t(th):
            await submit_bio_wait(th, read_bio(dev, 8192, 256))
            t1 = th.sim.now
            await submit_bio_wait(th, read_bio(dev, 8192 + 2048, 256))
            return th.sim.now - t1

        took = run(k, t)[0]
        assert took < 8_000_000 and took >= (1 << 20) * 10**9 // (150 << 20)

    def test_full_queue_makes_submitters_wait(self) -> None:
        """More requests than nr_requests: submit_bio sleeps for a tag; every request still completes in order."""
        k = fs_kernel(disk='name = "sda"\npreset = "hdd"', files="")
        dev = disk(k)
        done: list[int] = []

        async def t(th):
            bios = []
            for i in range(dev.nr_requests + 5):
                b = read_bio(dev, 10_000 + 16 * i)
                b.end_io = lambda bio, i=i: done.append(i)
                bios.append(b)
                await submit_bio(th, b)
            peak = dev.nr_pending
            while len(done) < len(bios):
                await th.sleep_for(1_000_000)
            return peak

        peak = run(k, t)[0]
        assert peak == dev.nr_requests
        assert done == list(range(dev.nr_requests + 5))
        assert dev.nr_pending == 0 and not dev.queue and not dev.inflight


class TestErrors:
    def test_error_sector_fails_only_requests_touching_it(self) -> None:
        """error_sectors: a request covering the sector gets -EIO, its neighbours succeed."""
        k = fs_kernel(disk='name = "sda"\nerror_sectors = [5000]', files="")
        dev = disk(k)

        async def t(th):
            return [await submit_bio_wait(th, read_bio(dev, s)) for s in (4992, 4996, 5001, 5008)]

        assert run(k, t)[0] == [0, -5, 0, 0]
        assert dev.failed == 1

    def test_error_rate_is_deterministic(self) -> None:
        """error_rate draws from the seeded per-disk stream: the same seed fails the same requests."""
        def failures(seed: int) -> list[int]:
            k = fs_kernel(disk='name = "sda"\nerror_rate = 0.3', files="", extra=f"[run]\nseed = {seed}\n")
            dev = disk(k)

            async def t(th):
                return [await submit_bio_wait(th, read_bio(dev, 8 * i)) for i in range(40)]

            return run(k, t)[0]

        a, b, c = failures(1), failures(1), failures(2)
        assert a == b and a != c and 3 <= a.count(-5) <= 25


class TestData:
    def test_write_then_read_moves_tokens(self) -> None:
        """A write stores the tokens its pages had at submission; a read gives a page what the platter holds."""
        k = fs_kernel(files="")
        dev = disk(k)

        async def t(th):
            p = _P()
            p.token = 31
            w = Bio(dev, REQ_OP_WRITE, 4096, 8, [(p, 4096)])
            await submit_bio(th, w)
            p.token = 32  # changed after submission: not what the disk gets
            while not w.done:
                await th.sleep_for(10_000)
            r = read_bio(dev, 4096)
            await submit_bio_wait(th, r)
            return r.vecs[0][0].token, dev.platter_token(8)

        assert run(k, t)[0] == (31, -9)

    def test_counters(self) -> None:
        """pgpgin/pgpgout count sectors (shown as KiB by /proc/vmstat); the disk counts requests and sectors."""
        k = fs_kernel(files="")
        dev = disk(k)

        async def t(th):
            await submit_bio_wait(th, read_bio(dev, 0, 4))
            p = _P()
            await submit_bio_wait(th, Bio(dev, REQ_OP_WRITE, 64, 8, [(p, 64)]))

        run(k, t)
        assert k.vmstat["pgpgin"] == 32 and k.vmstat["pgpgout"] == 8
        assert (dev.reads, dev.writes, dev.sectors_read, dev.sectors_written) == (1, 1, 32, 8)


class TestLayout:
    def test_first_file_starts_at_sector_3072(self) -> None:
        """The partition starts at sector 2048 and file data at block 128: the first file's page 0 is sector 3072."""
        k = fs_kernel(files='[[machine.file]]\npath = "/a"\nsize = 5000\n[[machine.file]]\npath = "/b"\nsize = 4096\n')
        fs, a = k.block.lookup("/a")
        _, b = k.block.lookup("/b")
        assert PART_START + DATA_START_BLOCK * 8 == 3072
        assert fs.bmap(a, 0) == 3072 and fs.bmap(a, 1) == 3080 and fs.bmap(a, 2) is None
        assert fs.bmap(b, 0) == 3088 and (a.ino, b.ino) == (12, 13)
        assert fs.s_dev == (8 << 20) | 1  # sda1

    def test_device_numbers(self) -> None:
        """Disk names get the kernel's majors and minors: sda 8:0, sdb 8:16, vdb 254:16, nvme0n1 259:0."""
        assert device_numbers("sda", 0) == (8, 0) and device_numbers("sdb", 1) == (8, 16)
        assert device_numbers("vdb", 0) == (254, 16) and device_numbers("nvme0n1", 0) == (259, 0)

    def test_swap_areas_are_reserved_at_the_end(self) -> None:
        """Each [[machine.swap]] gets a sector range at the top of its disk; the filesystem ends below it."""
        k = fs_kernel(disk='name = "sda"\nsize = "1GiB"',
                      extra='[[machine.swap]]\nname = "/dev/sda2"\nsize = "64MiB"\n', files="")
        area = k.block.swap_areas["/dev/sda2"]
        dev, start, n = area.bdev, area.start_sector, area.nr_sectors
        assert dev.name == "sda" and n == (64 << 20) // 512 and start + n == (1 << 30) // 512
        part = dev.partitions[0]
        assert part.start + part.nr_sectors <= start


class TestEvents:
    @pytest.mark.parametrize("op,flags,rwbs", [(REQ_OP_READ, 0, "R"), (REQ_OP_WRITE, REQ_SYNC, "WS"),
                                               (REQ_OP_READ, REQ_RAHEAD, "RA"), (REQ_OP_READ, REQ_META, "RM")])
    def test_rwbs(self, op: int, flags: int, rwbs: str) -> None:
        """blk_fill_rwbs: the operation letter, then A(head), S(ync), M(eta)."""
        assert blk_fill_rwbs(op, flags) == rwbs

    def test_issue_and_complete_render_like_block_h(self) -> None:
        """block_rq_issue / block_rq_complete records render in block.h's formats and parse back."""
        k = fs_kernel(events="block:*", files="")
        dev = disk(k)

        async def t(th):
            await submit_bio_wait(th, read_bio(dev, 3072, 2))

        run(k, t)
        recs = [r for r in records(k) if r["event"] in ("block_rq_issue", "block_rq_complete")]
        assert lookup("block_rq_issue").body(recs[0]) == "8,0 R 8192 () 3072 + 16 none,0,0 [t0]"
        assert lookup("block_rq_complete").body(recs[1]) == "8,0 R () 3072 + 16 none,0,0 [0]"
        line = event_line(recs[1])
        assert " d.h.." in line or " ..h.." in line
        assert parse_line(line)["event"] == "block_rq_complete"

"""/proc/lock_stat (smpmem/proc/lock_stat.py) against text written out by hand from lockdep_proc.c's formats."""

from __future__ import annotations

from smpmem.proc.lock_stat import LOCKSTAT_WIDTH, render_lock_stat, site_address, snprint_time
from smpmem.sim import Machine, SpinLock, Thread
from smpmem.sim.costs import CostModel
from smpmem.sim.locks import LockRegistry
from smpmem.trace.fmt import hash_ptr

RULE = "-" * 221
DOTS = "." * 221
HEADER = (
    "lock_stat version 0.4\n"
    f"{RULE}\n"
    "                              class name    con-bounces    contentions   waittime-min   waittime-max"
    " waittime-total   waittime-avg    acq-bounces   acquisitions   holdtime-min   holdtime-max"
    " holdtime-total   holdtime-avg\n"
    f"{RULE}\n"
    "\n"
)


def small_registry() -> LockRegistry:
    """Five classes fed lockdep's hooks directly; the figures are chosen to exercise rounding and layout.

    - ``&vmap_area_lock``: one acquisition held 40 ns, never contended.
    - ``&zone->lock``: held 1000, 2500 and 994 ns; two contentions waiting 5 and 1,234,567 ns, one a
      con-bounce, both acquisitions after waiting bounced; waiters at rmqueue_bulk and
      free_pcppages_bulk, the holder both times from rmqueue_bulk.
    - ``&mm->mmap_lock``: a writer held it 995 ns; readers held it 10 and 20 ns, one after a 4 ns wait
      at do_user_addr_fault behind the writer from do_mmap.
    - a class whose name is longer than the 37 characters lock_stat keeps, held 10^12 ns once.
    - ``&unused``: registered, never taken (not listed).
    """
    reg = LockRegistry()
    quiet = reg.get_class("&vmap_area_lock")
    zone = reg.get_class("&zone->lock")
    mm = reg.get_class("&mm->mmap_lock")
    long = reg.get_class("&kmem_cache_node->list_lock_of_a_long_name")
    reg.get_class("&unused")
    quiet.acquired(False, False, None)
    quiet.released(False, 40)
    zone.acquired(False, False, None)
    zone.released(False, 1000)
    zone.contended(False, True, "rmqueue_bulk", "rmqueue_bulk")
    zone.acquired(False, True, 5)
    zone.released(False, 2500)
    zone.contended(False, False, "free_pcppages_bulk", "rmqueue_bulk")
    zone.acquired(False, True, 1_234_567)
    zone.released(False, 994)
    mm.acquired(False, False, None)
    mm.released(False, 995)
    mm.contended(True, True, "do_user_addr_fault", "do_mmap")
    mm.acquired(True, False, 4)
    mm.released(True, 10)
    mm.acquired(True, True, None)
    mm.released(True, 20)
    long.acquired(False, False, None)
    long.released(False, 1_000_000_000_000)
    return reg


# Worked out by hand (times in ns -> "%lld.%02d" of (ns + 5) / 1000):
#   zone wait: min 5 -> 0.01, max 1234567 -> 1234.57, total 1234572 -> 1234.57, avg 617286 -> 617.29
#   zone hold: min 994 -> 0.99, max 2500 -> 2.50, total 4494 -> 4.49, avg 1498 -> 1.50
#   mmap W hold 995 -> 1.00 (the +5 carries); R wait 4 -> 0.00; R hold 10/20/30/15 -> 0.01/0.02/0.03/0.02
#   Sorted by contentions: zone (2), mmap (1), then the two with none in registration order.
#   The dashed rule is as long as the name (+2 for "-W"/"-R") and ends in column 40.
EXPECTED = HEADER + f"""\
                             &zone->lock:             1              2           0.01        1234.57        1234.57         617.29              2              3           0.99           2.50           4.49           1.50
                             -----------
                             &zone->lock              1          [<00000000568bd530>] rmqueue_bulk
                             &zone->lock              1          [<00000000cc650c57>] free_pcppages_bulk
                             -----------
                             &zone->lock              2          [<00000000568bd530>] rmqueue_bulk

{DOTS}

                        &mm->mmap_lock-W:             0              0           0.00           0.00           0.00           0.00              0              1           1.00           1.00           1.00           1.00
                        &mm->mmap_lock-R:             1              1           0.00           0.00           0.00           0.00              1              2           0.01           0.02           0.03           0.02
                        ----------------
                          &mm->mmap_lock              1          [<00000000fbd96ded>] do_user_addr_fault
                        ----------------
                          &mm->mmap_lock              1          [<000000004b11ad67>] do_mmap

{DOTS}

                         &vmap_area_lock:             0              0           0.00           0.00           0.00           0.00              0              1           0.04           0.04           0.04           0.04
   &kmem_cache_node->list_lock_of_a_long:             0              0           0.00           0.00           0.00           0.00              0              1  1000000000.00  1000000000.00  1000000000.00  1000000000.00
"""


class TestRender:
    def test_small_registry_renders_exactly(self):
        """The whole file for a small registry matches the hand-written text, byte for byte."""
        assert render_lock_stat(small_registry()) == EXPECTED

    def test_empty_registry_is_the_header_alone(self):
        """No class ever taken: the header, its two rules and the blank line."""
        assert render_lock_stat(LockRegistry()) == HEADER

    def test_rules_and_columns(self):
        """The rules are 221 characters (40 + 1 + 12 x 15); a class row is 220, as seq_stats prints it."""
        lines = render_lock_stat(small_registry()).splitlines()
        assert LOCKSTAT_WIDTH == 221 and len(lines[1]) == len(lines[3]) == 221
        assert len(lines[2]) == 220 and len(lines[5]) == 220

    def test_call_sites_show_hashed_crc32_addresses(self):
        """``[<%p>]`` is hash_ptr of the kernel-text address 0xffffffff81000000 + crc32(site)."""
        import zlib

        assert site_address("rmqueue_bulk") == 0xFFFFFFFF81000000 + zlib.crc32(b"rmqueue_bulk")
        assert f"[<{hash_ptr(site_address('rmqueue_bulk'))}>] rmqueue_bulk" in EXPECTED

    def test_lockdep_report_adds_the_warning_line(self):
        """After lockdep reported a violation the header carries the kernel's debug_locks warning."""
        reg = LockRegistry()
        reg.lockdep.raise_on_violation = False
        reg.lockdep.check([("a", 0)], ("b", 0), "t-1")
        reg.lockdep.check([("b", 0)], ("a", 0), "t-1")
        text = render_lock_stat(reg)
        assert text.splitlines()[:3] == [
            "lock_stat version 0.4",
            "*WARNING* lock debugging disabled!! - possibly due to a lockdep warning",
            RULE,
        ]

    def test_no_dotted_line_without_contending_points(self):
        """As the kernel's ``if (i)``: contention points alone (holder site unknown) get no dotted line."""
        reg = LockRegistry()
        c = reg.get_class("&x")
        c.contended(False, False, "waiter_site", None)
        c.acquired(False, False, 1_000)
        c.released(False, 2_000)
        assert render_lock_stat(reg) == HEADER + (
            "                                      &x:             0              1           1.00           1.00"
            "           1.00           1.00              0              1           2.00           2.00"
            "           2.00           2.00\n"
            "                                      --\n"
            f"                                      &x              1          [<{hash_ptr(site_address('waiter_site'))}>]"
            " waiter_site\n"
        )

    def test_ties_keep_registration_order(self):
        """Classes with equal contentions are listed in registration order (the kernel's sort is unstable)."""
        reg = LockRegistry()
        for name in ("&c", "&a", "&b"):
            k = reg.get_class(name)
            k.acquired(False, False, None)
            k.released(False, 1)
        names = [line.split(":")[0].strip() for line in render_lock_stat(reg).splitlines()[5:]]
        assert names == ["&c", "&a", "&b"]


class TestSnprintTime:
    def test_rounding(self):
        """ns + 5, then whole microseconds and two truncated decimals."""
        cases = {0: "0.00", 4: "0.00", 5: "0.01", 994: "0.99", 995: "1.00", 1_000: "1.00",
                 1_234_567: "1234.57", 10**12: "1000000000.00"}
        assert {ns: snprint_time(ns) for ns in cases} == cases


class TestFromASimulation:
    async def test_ping_pong_on_two_cpus(self):
        """The hand-computed spinlock schedule of test_sim_locks (free costs) renders as these rows."""
        m = Machine(2, costs=CostModel(lock_acquire=0, cacheline_bounce=0, spin_handoff=0, context_switch=0))
        lock = SpinLock(m, "&zone->lock")

        async def worker(th: Thread) -> None:
            for _ in range(3):
                await lock.acquire(th, site="rmqueue_bulk")
                await th.compute(100)
                await lock.release(th)
                await th.compute(50)

        def setup(m: Machine) -> None:
            m.start_thread(Thread(m, 1, "t1"), worker, cpu=0)
            m.start_thread(Thread(m, 2, "t2"), worker, cpu=1)

        assert await m.run(setup) == "completed"
        ip = f"[<{hash_ptr(site_address('rmqueue_bulk'))}>]"
        # waits 100, 50, 50, 50, 50 (avg 60 -> 0.06); six holds of 100 ns; every hand-off bounced.
        assert render_lock_stat(m.locks) == HEADER + (
            "                             &zone->lock:             5              5           0.05           0.10"
            "           0.30           0.06              5              6           0.10           0.10"
            "           0.60           0.10\n"
            "                             -----------\n"
            f"                             &zone->lock              5          {ip} rmqueue_bulk\n"
            "                             -----------\n"
            f"                             &zone->lock              5          {ip} rmqueue_bulk\n"
            f"\n{DOTS}\n\n"
        )

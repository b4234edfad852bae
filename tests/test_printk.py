"""The kernel log (smpmem/printk.py): dmesg's format, print order, the ring's size, and the subsystems feeding it."""

from __future__ import annotations

from types import SimpleNamespace

from smpmem.printk import LogBuf, PrintkList, format_dmesg, printk_init


class TestFormat:
    def test_dmesg_stamp(self) -> None:
        """Seconds in 5 columns, a dot, 6 digits of microseconds, a space: dmesg's "[%5lu.%06lu] "."""
        assert format_dmesg([(123_456_789, "a"), (0, "b"), (12_345_000_001_999, "c"), (123_456_000_000_000, "d")]) == (
            "[    0.123456] a\n[    0.000000] b\n[12345.000001] c\n[123456.000000] d\n")

    def test_empty(self) -> None:
        """No records, no text."""
        assert format_dmesg([]) == ""


class TestLogBuf:
    def test_print_order_and_time(self) -> None:
        """Records keep the order they were printed in, each stamped with the clock's time then."""
        clock = SimpleNamespace(now=5)
        log = LogBuf(clock)
        log.printk("first\n")
        clock.now = 9
        log.printk("second")
        assert list(log.records) == [(5, "first"), (9, "second")]

    def test_ring_drops_oldest(self) -> None:
        """Past the buffer's size the oldest records go, and are counted."""
        log = LogBuf(SimpleNamespace(now=0), size=12)
        for word in ("aaaa", "bbbb", "cccc"):
            log.printk(word)
        assert [t for _, t in log.records] == ["bbbb", "cccc"] and log.dropped == 1


class TestSinks:
    def test_subsystem_lists_feed_the_log(self) -> None:
        """printk_init turns each subsystem's message list into one that also logs; boot-time lines are stamped 0."""
        k = SimpleNamespace(sim=SimpleNamespace(now=0), oom=SimpleNamespace(messages=["early"]),
                            swap=SimpleNamespace(errors=[]))
        log = printk_init(k)
        assert isinstance(k.oom.messages, PrintkList) and k.oom.messages == ["early"]
        k.sim.now = 7_000
        k.swap.errors.append("Write-error on swap-device (8:2:16)")
        k.oom.messages.append("Out of memory: Killed process 3 (hog)")
        del k.oom.messages[:-1]  # the subsystems trim their own lists; the log keeps everything
        assert k.printk is log
        assert list(log.records) == [(0, "early"), (7_000, "Write-error on swap-device (8:2:16)"),
                                     (7_000, "Out of memory: Killed process 3 (hog)")]

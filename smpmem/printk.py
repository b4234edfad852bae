"""The kernel log: models the printk ring buffer (kernel/printk/printk.c) and dmesg's default output.

Modelled: one record per message, stamped with the virtual time at which
it was printed (``local_clock()``; the model's clock starts at boot), kept
in print order in a ring of ``LOG_BUF_LEN`` bytes of text (the oldest
records go first, as ``CONFIG_LOG_BUF_SHIFT`` = 17 makes the kernel's),
and :func:`format_dmesg` prints them as ``dmesg`` does by default:
``[%5lu.%06lu] `` (seconds and microseconds since boot) and the text.

Simplified: no log levels or facilities (``dmesg`` does not print them by
default), no console, no rate limiting (``pr_alert_ratelimited`` prints
every time), no continuation lines; the subsystems print only the first
line of a report (``dump_header`` prints no stack, no ``Mem-Info``).

The subsystems keep their own most recent messages in lists
(``kernel.oom.messages``, ``kernel.swap.errors``, ``kernel.slab.warnings``,
``kernel.vmalloc.warnings``, ``kernel.page_alloc.alloc_failures``);
:func:`printk_init`, last at boot, makes each a :class:`PrintkList`, which
also passes every line it is given to the log.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Iterable

LOG_BUF_LEN = 1 << 17  # CONFIG_LOG_BUF_SHIFT = 17: 128 KiB of text

# (kernel attribute, its list of messages): where each subsystem keeps what it printed.
SINKS = (
    ("page_alloc", "alloc_failures"),  # warn_alloc: "<comm>: page allocation failure: ..."
    ("slab", "warnings"),
    ("vmalloc", "warnings"),
    ("swap", "errors"),  # pr_alert: "Write-error on swap-device (...)", "Bad swap file entry ..."
    ("oom", "messages"),  # "<comm> invoked oom-killer: ...", "Out of memory: Killed process ..."
)


class LogBuf:
    """The ring buffer: ``records`` are (virtual ns, text) in print order; ``dropped`` counts overwritten ones."""

    def __init__(self, clock: Any, size: int = LOG_BUF_LEN) -> None:
        self.clock = clock  # anything with ``now`` (virtual ns): the engine
        self.size = size
        self.records: deque[tuple[int, str]] = deque()
        self.bytes = 0
        self.dropped = 0

    def printk(self, text: str, ts: int | None = None) -> None:
        """Log one message (a trailing newline is dropped), stamped now unless ``ts`` is given."""
        text = text.rstrip("\n")
        self.records.append((self.clock.now if ts is None else ts, text))
        self.bytes += len(text) + 1
        while self.bytes > self.size and len(self.records) > 1:
            _, old = self.records.popleft()
            self.bytes -= len(old) + 1
            self.dropped += 1


class PrintkList(list):  # type: ignore[type-arg]
    """A subsystem's list of recent messages that also logs each appended line to ``log``."""

    def __init__(self, log: LogBuf, items: Iterable[str] = ()) -> None:
        super().__init__(items)
        self.log = log

    def append(self, line: str) -> None:  # type: ignore[override]
        super().append(line)
        self.log.printk(line)


def printk_init(kernel: Any) -> LogBuf:
    """``kernel.printk``: the log, fed by every subsystem's message list (lines printed during boot at 0)."""
    log = LogBuf(kernel.sim)
    for sub, attr in SINKS:
        owner = getattr(kernel, sub, None)
        if owner is None or not isinstance(getattr(owner, attr, None), list):
            continue
        old = getattr(owner, attr)
        for line in old:
            log.printk(line, ts=0)
        setattr(owner, attr, PrintkList(log, old))
    kernel.printk = log
    return log


def format_dmesg(records: Iterable[tuple[int, str]]) -> str:
    """The records as ``dmesg`` prints them: ``[    0.123456] text`` per line."""
    out = []
    for ts, text in records:
        us = ts // 1000
        out.append(f"[{us // 1_000_000:5d}.{us % 1_000_000:06d}] {text}\n")
    return "".join(out)

"""The tracer: events from the catalog to JSON Lines, and always-on counters.

Modelled on ftrace's event enable mask: each event type has an id, and
:attr:`Tracer.on` is a bytearray indexed by it, so a disabled event costs one
index and one test. Enabled events go through a structlog pipeline configured
for speed: the per-actor context (``ts`` slot, ``cpu``, ``pid``, ``comm``)
is bound once per actor, :meth:`TraceLogger.record` passes the fields as one
dict (no keyword re-packing), the one processor renders with orjson, and the
logger is a buffered file that does not flush per line.

Counters (``/proc/vmstat`` names) are plain integers in :attr:`Tracer.vmstat`
and are updated whether or not any event is logged.
"""

from __future__ import annotations

import io
from collections import defaultdict
from typing import Any, BinaryIO, Iterable, Protocol

import orjson
import structlog

from ..trace.catalog import EventType, all_events, select

_DUMPS = orjson.dumps
_OPT = orjson.OPT_APPEND_NEWLINE


def _render_jsonl(_logger: Any, _name: str, event_dict: dict[str, Any]) -> bytes:
    """The one processor: the event dict as one JSON line (keys in insertion order)."""
    return _DUMPS(event_dict, option=_OPT)


class _BufferedBytesLogger:
    """A structlog logger that writes bytes to a buffered file and never flushes per line."""

    __slots__ = ("_write", "lines")

    def __init__(self, fh: BinaryIO) -> None:
        self._write = fh.write
        self.lines = 0

    def msg(self, message: bytes) -> None:
        self._write(message)
        self.lines += 1


class TraceLogger(structlog.BoundLoggerBase):
    """structlog's documented custom-wrapper pattern: one method, no level filtering."""

    def trace(self, event: str, **kw: Any) -> Any:
        return self._proxy_to_logger("msg", event, **kw)

    def record(self, ts: int, event: str, fields: dict[str, Any]) -> None:
        """``trace(event, ts=ts, **fields)`` without packing the keywords twice: :meth:`Tracer.emit`'s path.

        Builds the event dict as structlog's ``_process_event`` does (the bound
        context, then ``ts`` and the fields, then ``event``), runs the same
        processors and hands the result to the logger's ``msg``.
        """
        event_dict: Any = self._context.copy()
        event_dict["ts"] = ts
        event_dict.update(fields)
        event_dict["event"] = event
        try:
            for proc in self._processors:
                event_dict = proc(self._logger, "msg", event_dict)
        except structlog.DropEvent:
            return
        self._logger.msg(event_dict)


class Context(Protocol):
    """Whatever emits events: it carries the common header, bound once."""

    log: Any


class Tracer:
    """Event sink plus counters for one run."""

    def __init__(self, clock: Any, out: BinaryIO | None = None, events: str | Iterable[str] | None = "*") -> None:
        self.clock = clock  # anything with an integer `now` (the Simulator)
        catalog = all_events()
        self.on = bytearray(len(catalog) + 64)  # room for events declared later (tests)
        self.enabled: list[EventType] = []
        self._fh = out
        self._logger = _BufferedBytesLogger(out if out is not None else io.BytesIO())
        self._base = structlog.wrap_logger(
            self._logger,
            processors=[_render_jsonl],
            wrapper_class=TraceLogger,
            cache_logger_on_first_use=True,
        )
        self.vmstat: defaultdict[str, int] = defaultdict(int)
        self.stopped = False
        if out is not None and events is not None:
            self.enable(events)

    # -- selection ----------------------------------------------------------
    def enable(self, globs: str | Iterable[str]) -> None:
        """Enable the events matching ``trace-cmd -e``-style globs (ValueError if one matches nothing)."""
        for ev in select(globs):
            if ev.id >= len(self.on):
                self.on.extend(bytes(ev.id + 64 - len(self.on)))
            if not self.on[ev.id]:
                self.on[ev.id] = 1
                self.enabled.append(ev)

    def disable_all(self) -> None:
        for i in range(len(self.on)):
            self.on[i] = 0
        self.enabled.clear()

    # -- binding ------------------------------------------------------------
    def bind(self, cpu: int, pid: int, comm: str) -> Any:
        """A logger with the common header bound; ``ts`` and ``event`` are slots filled per record."""
        return self._base.bind(ts=0, cpu=cpu, pid=pid, comm=comm, event=None)

    # -- emitting -----------------------------------------------------------
    def emit(self, ev: EventType, who: Context, **fields: Any) -> None:
        """Record ``ev`` for ``who`` at the current virtual time, if enabled."""
        if self.on[ev.id] and not self.stopped:
            who.log.record(self.clock.now, ev.name, fields)

    def enabled_for(self, ev: EventType) -> bool:
        return bool(self.on[ev.id]) and not self.stopped

    @property
    def lines(self) -> int:
        return self._logger.lines

    def stop(self) -> None:
        """No more records (teardown after the end of a run is not logged)."""
        self.stopped = True

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def count(self, name: str, n: int = 1) -> None:
        """Add to a ``/proc/vmstat`` counter."""
        self.vmstat[name] += n

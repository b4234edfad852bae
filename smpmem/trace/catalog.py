"""The one event catalog.

An :class:`EventType` names a tracepoint (``subsystem:name``), its fields in
the kernel's order, the kernel's ``TP_printk`` format (documentation and the
spec of :attr:`EventType.render`), and a renderer that turns a record's
fields into the body of an ftrace text line.

A JSON Lines record is ``{"ts": ns, "cpu": n, "pid": n, "comm": s,
"event": name, <fields in declaration order>}``. Field values are raw
integers or strings as the kernel stores them in the ring buffer (``pfn`` an
int, ``gfp_flags`` the bit mask); renderers do the ``%p`` hashing and the
``__print_flags`` work at export time, as the kernel does at read time.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

Render = Callable[[Mapping[str, Any]], str]


@dataclass(eq=False)
class EventType:
    """One event type. ``id`` indexes the tracer's enable mask."""

    subsystem: str
    name: str
    fields: tuple[str, ...]
    fmt: str | None = None  # the kernel's TP_printk, where the kernel has this tracepoint
    render: Render | None = None  # fields -> ftrace body (after "name: ")
    doc: str = ""
    kernel: bool = True  # False for smpmem's own events (named in the kernel's style)
    id: int = field(default=-1)

    @property
    def qualname(self) -> str:
        return f"{self.subsystem}:{self.name}"

    def body(self, record: Mapping[str, Any]) -> str:
        """The ftrace body for a record: the rendered TP_printk, or ``k=v`` pairs."""
        if self.render is not None:
            return self.render(record)
        return " ".join(f"{f}={record.get(f)}" for f in self.fields)


CATALOG: dict[str, EventType] = {}
_BY_ID: list[EventType] = []


def define(
    subsystem: str,
    name: str,
    fields: Iterable[str],
    fmt: str | None = None,
    render: Render | None = None,
    doc: str = "",
    kernel: bool = True,
) -> EventType:
    """Declare an event type once; a second declaration of the same name is a bug."""
    if name in CATALOG:
        raise ValueError(f"event {name!r} is declared twice")
    ev = EventType(subsystem, name, tuple(fields), fmt, render, doc, kernel, id=len(_BY_ID))
    CATALOG[name] = ev
    _BY_ID.append(ev)
    return ev


def by_id(i: int) -> EventType:
    return _BY_ID[i]


def lookup(name: str) -> EventType:
    """The event type called ``name`` (with or without ``subsystem:``)."""
    _load_all()
    key = name.split(":", 1)[-1]
    try:
        return CATALOG[key]
    except KeyError:
        raise KeyError(f"unknown event {name!r}") from None


def select(globs: str | Iterable[str] | None) -> list[EventType]:
    """Event types matching ``trace-cmd -e``-style globs: ``kmem:*,vmscan:mm_vmscan_*``.

    A glob without ``:`` matches subsystem or event name; ``*`` or ``None``
    selects everything; a leading ``!`` removes what it matches. Raises
    ``ValueError`` naming a glob that matches nothing.
    """
    _load_all()
    if globs is None:
        return list(_BY_ID)
    parts = [g.strip() for g in (globs.split(",") if isinstance(globs, str) else globs)]
    parts = [p for p in parts if p]
    chosen: dict[int, EventType] = {}
    only_negative = all(p.startswith("!") for p in parts)
    if only_negative:
        chosen = {e.id: e for e in _BY_ID}
    for p in parts:
        neg = p.startswith("!")
        pat = p[1:] if neg else p
        matched = [e for e in _BY_ID if _matches(e, pat)]
        if not matched:
            raise ValueError(f"event glob {pat!r} matches no event (try `python -m smpmem events`)")
        for e in matched:
            if neg:
                chosen.pop(e.id, None)
            else:
                chosen[e.id] = e
    return [chosen[i] for i in sorted(chosen)]


def _matches(e: EventType, pat: str) -> bool:
    if ":" in pat:
        sub, _, nm = pat.partition(":")
        return fnmatch.fnmatchcase(e.subsystem, sub or "*") and fnmatch.fnmatchcase(e.name, nm or "*")
    return fnmatch.fnmatchcase(e.name, pat) or fnmatch.fnmatchcase(e.subsystem, pat)


_loaded = False


def _load_all() -> None:
    """Import every ``events_*`` module so the catalog is complete."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from . import events  # noqa: F401  (registers all declarations)


def all_events() -> list[EventType]:
    _load_all()
    return list(_BY_ID)

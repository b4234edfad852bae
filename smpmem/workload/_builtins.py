"""Built-in programs, selected with ``builtin = "name"`` in a ``[[process]]``.

Each builder turns ``params`` into a list of scenario steps, so a built-in
program runs through the same interpreter as a hand-written one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter

from ..scenario import Step

Builder = Callable[[dict[str, Any]], list[dict[str, Any]]]
BUILTINS: dict[str, tuple[Builder, str]] = {}
_STEPS = TypeAdapter(list[Step])


def builtin(name: str, doc: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        BUILTINS[name] = (fn, doc)
        return fn

    return deco


class UnknownBuiltin(ValueError):
    pass


def builtin_program(name: str, params: dict[str, Any]) -> list[Any]:
    """The steps of built-in program ``name`` with ``params`` (ValueError if unknown)."""
    if name not in BUILTINS:
        import difflib

        close = difflib.get_close_matches(name, BUILTINS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownBuiltin(f"unknown built-in program {name!r}{hint} (known: {', '.join(sorted(BUILTINS))})")
    fn, _ = BUILTINS[name]
    return _STEPS.validate_python(fn(dict(params)))


@builtin("lockstorm", "Threads that think, then take one shared spinlock: params lock, hold, think, iterations.")
def _lockstorm(p: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"op": "loop", "count": int(p.get("iterations", 1000)), "body": [
        {"op": "compute", "ns": p.get("think", 2000)},
        {"op": "lock", "name": p.get("lock", "demo_lock"), "hold": p.get("hold", 500)},
    ]}]

"""Where each key and array element of a TOML document sits: path -> line.

``tomllib`` gives values without positions. To point an error at a line,
this module scans the text once more (it has already parsed, so it is valid
TOML) and records the line of every key, table header and array element
under its *concrete* path: ``("process", 1, "program", 3, "size")``, with
array-of-tables indices counted as TOML counts them (``[[a.b]]`` appends to
the ``b`` of the last ``[[a]]``).

It is lenient: on anything it does not understand it stops and returns what
it has, so a position is a help and never a new way to fail.
"""

from __future__ import annotations

import tomllib
from typing import Any

Path = tuple[Any, ...]

_BARE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class _Scan:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.line = 1
        self.lines: dict[Path, int] = {}
        # Document shape, enough to resolve [[array]] indices: table -> {key: dict | list[dict]}.
        self.root: dict[str, Any] = {}

    # --- characters ---------------------------------------------------------
    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def startswith(self, t: str) -> bool:
        return self.s.startswith(t, self.i)

    def advance(self, n: int = 1) -> None:
        for _ in range(n):
            if self.i < len(self.s):
                if self.s[self.i] == "\n":
                    self.line += 1
                self.i += 1

    def skip_ws(self) -> None:
        while self.peek() in (" ", "\t"):
            self.advance()

    def skip_comment(self) -> None:
        if self.peek() == "#":
            while self.peek() not in ("\n", ""):
                self.advance()

    def skip_blank(self) -> None:
        """Whitespace, newlines and comments (inside arrays and between statements)."""
        while True:
            c = self.peek()
            if c in (" ", "\t", "\r", "\n"):
                self.advance()
            elif c == "#":
                self.skip_comment()
            else:
                return

    # --- keys and strings ---------------------------------------------------
    def string(self) -> str:
        """Consume one string literal of any of the four kinds; return its text (raw)."""
        start = self.i
        for q in ('"""', "'''"):
            if self.startswith(q):
                self.advance(3)
                while self.peek() and not self.startswith(q):
                    if q == '"""' and self.peek() == "\\":
                        self.advance()
                    self.advance()
                self.advance(3)
                while self.peek() == q[0] and self.i - start < 10_000:  # up to two quotes may end the content
                    self.advance()
                return self.s[start:self.i]
        q = self.peek()
        self.advance()
        while self.peek() and self.peek() != q and self.peek() != "\n":
            if q == '"' and self.peek() == "\\":
                self.advance()
            self.advance()
        self.advance()
        return self.s[start:self.i]

    def key(self) -> list[str]:
        """A dotted key: ``a."b c".d`` -> ["a", "b c", "d"]."""
        parts: list[str] = []
        while True:
            self.skip_ws()
            c = self.peek()
            if c in ('"', "'"):
                raw = self.string()
                parts.append(tomllib.loads(f"k = {raw}")["k"])
            else:
                start = self.i
                while self.peek() in _BARE and self.peek():
                    self.advance()
                if self.i == start:
                    raise ValueError("no key")
                parts.append(self.s[start:self.i])
            self.skip_ws()
            if self.peek() != ".":
                return parts
            self.advance()

    # --- values -------------------------------------------------------------
    def record(self, path: Path, line: int) -> None:
        self.lines.setdefault(path, line)

    def value(self, path: Path) -> None:
        self.skip_ws()
        c = self.peek()
        if c in ('"', "'"):
            self.string()
        elif c == "[":
            self.advance()
            n = 0
            while True:
                self.skip_blank()
                if self.peek() in ("]", ""):
                    self.advance()
                    return
                self.record(path + (n,), self.line)
                self.value(path + (n,))
                n += 1
                self.skip_blank()
                if self.peek() == ",":
                    self.advance()
        elif c == "{":
            self.advance()
            while True:
                self.skip_blank()
                if self.peek() in ("}", ""):
                    self.advance()
                    return
                line = self.line
                k = tuple(self.key())
                for j in range(1, len(k) + 1):
                    self.record(path + k[:j], line)
                self.skip_ws()
                self.advance()  # "="
                self.value(path + k)
                self.skip_blank()
                if self.peek() == ",":
                    self.advance()
        else:
            while self.peek() not in (",", "]", "}", "\n", "#", ""):
                self.advance()

    # --- document -----------------------------------------------------------
    def table(self, keys: list[str], array: bool) -> Path:
        """Resolve a header's keys to a concrete path, appending for ``[[...]]``."""
        node: Any = self.root
        path: list[Any] = []
        for j, k in enumerate(keys):
            last = j == len(keys) - 1
            path.append(k)
            child = node.get(k)
            if last and array:
                if not isinstance(child, list):
                    child = node[k] = []
                child.append({})
                path.append(len(child) - 1)
                return tuple(path)
            if child is None:
                child = node[k] = {}
            if isinstance(child, list):
                path.append(len(child) - 1)
                child = child[-1]
            node = child
        return tuple(path)

    def run(self) -> dict[Path, int]:
        current: Path = ()
        while True:
            self.skip_blank()
            if not self.peek():
                return self.lines
            line = self.line
            if self.peek() == "[":
                array = self.peek(1) == "["
                self.advance(2 if array else 1)
                keys = self.key()
                self.skip_ws()
                self.advance(2 if array else 1)
                current = self.table(keys, array)
                for j in range(1, len(current) + 1):
                    self.record(current[:j], line)
            else:
                k = tuple(self.key())
                for j in range(1, len(k) + 1):
                    self.record(current + k[:j], line)
                self.skip_ws()
                self.advance()  # "="
                self.value(current + k)
            self.skip_ws()
            self.skip_comment()


def key_lines(text: str) -> dict[Path, int]:
    """Map every concrete path in ``text`` to the line (1-based) where it is written."""
    scan = _Scan(text)
    try:
        return scan.run()
    except Exception:  # a position is a courtesy: never fail because of it
        return scan.lines


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """The line of ``path``, else of its nearest written ancestor (a missing key: its table)."""
    p = tuple(path)
    while p:
        if p in lines:
            return lines[p]
        p = p[:-1]
    return None

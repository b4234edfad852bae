"""``python -m bench [--only NAME]``: run every benchmark module of this package, in name order.

A benchmark module is a ``bench/<name>.py`` with a ``main()`` function; it
prints its own figures. The machine is described once at the top.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> list[str]:
    """Names of the modules in bench/ that define ``main()``, sorted."""
    names = []
    for path in sorted(HERE.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        mod = importlib.import_module(f"bench.{path.stem}")
        if callable(getattr(mod, "main", None)):
            names.append(path.stem)
    return names


def machine() -> str:
    load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    return (f"python {platform.python_version()} ({platform.python_implementation()}), "
            f"{os.cpu_count()} CPUs, {platform.machine()}, {platform.system()} {platform.release()}, {load}")


def main(argv: list[str] | None = None) -> int:
    names = discover()
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--only", metavar="NAME", action="append", choices=names,
                    help=f"run only this benchmark (repeatable); one of: {', '.join(names)}")
    args = ap.parse_args(argv)
    print(f"machine: {machine()}", flush=True)
    for name in args.only or names:
        print(f"\n== bench.{name} ==", flush=True)
        importlib.import_module(f"bench.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fixtures for the analysis tests: hand-written run directories (see rundirs.py), no model involved."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

import pytest
from rundirs import small_run

from smpmem.analysis.cli import add_commands


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """The hand-computed run of rundirs.small_run."""
    return small_run(tmp_path / "small")


@pytest.fixture
def cli() -> Callable[..., int]:
    """Run an analysis subcommand through a parser built the way smpmem.cli builds it."""
    parser = argparse.ArgumentParser(prog="smpmem")
    sub = parser.add_subparsers(dest="command", required=True)
    handlers = add_commands(sub)

    def run(*argv: str) -> int:
        args = parser.parse_args([str(a) for a in argv])
        return handlers[args.command](args)

    return run

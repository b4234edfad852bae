"""Locate and run the kernel's own trace post-processing scripts.

The scripts are Linux 6.12's Documentation/trace/postprocess/*.pl. Nothing is
copied from the kernel: ``shared/tools/kernel-source`` (beside the repository
checkout) unpacks the sources and prints where they are. Tests that need the
scripts are skipped, with the reason, only when that tool or perl is absent;
a tool that is present but fails is an error.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

KERNEL_SOURCE_TOOL = Path(__file__).parents[3] / "shared/tools/kernel-source"
VMSCAN = "trace-vmscan-postprocess.pl"
PAGEALLOC = "trace-pagealloc-postprocess.pl"


@cache
def postprocess_dir() -> Path:
    """Documentation/trace/postprocess of the unpacked 6.12 tree (skips the test if unavailable)."""
    if not KERNEL_SOURCE_TOOL.is_file():
        pytest.skip(f"kernel source tool not found at {KERNEL_SOURCE_TOOL}")
    if shutil.which("perl") is None:
        pytest.skip("perl is not installed; the kernel's post-processing scripts are perl")
    out = subprocess.run(["bash", str(KERNEL_SOURCE_TOOL)], capture_output=True, text=True,
                         check=True, timeout=900)
    return Path(out.stdout.strip().splitlines()[-1]) / "Documentation/trace/postprocess"


def run_script(name: str, trace_text: str, *args: str) -> str:
    """Run one script as ``perl script.pl < trace`` and return its stdout."""
    script = postprocess_dir() / name
    assert script.is_file(), f"{script} missing from the unpacked kernel sources"
    done = subprocess.run(["perl", str(script), *args], input=trace_text, capture_output=True,
                          text=True, check=True, timeout=120)
    return done.stdout

"""will-it-scale figures of a run: operations per simulated second, per task and in total.

``wis_summary(kernel)`` is what run.json records under ``"wis"`` (call it
after the run); ``ops_per_sec(run)`` and ``intervals(run, ns)`` read a
finished run — its directory, run.json, RunResult or kernel. The code is in
``_wis.py``; the built-in programs that count are in ``_builtins.py``.
"""

from ._builtins import WILL_IT_SCALE as WILL_IT_SCALE
from ._wis import (
    SAMPLE_NS as SAMPLE_NS,
    TaskOps as TaskOps,
    TaskRate as TaskRate,
    WisResult as WisResult,
    intervals as intervals,
    ops_per_sec as ops_per_sec,
    wis_summary as wis_summary,
)

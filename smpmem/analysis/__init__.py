"""Analysis of finished run directories: reports, plots, /proc trees, exports, comparisons.

Reads only a run directory's files and the event catalog (``smpmem.trace``);
never imports the model (``smpmem.sim``, ``smpmem.mm``). The public surface
is these re-exports; the code lives in the modules.
"""

from ._reader import (
    DamagedLogWarning as DamagedLogWarning,
    Damage as Damage,
    Run as Run,
    RunDirError as RunDirError,
    load as load,
)
from .report import Report as Report, analyze as analyze

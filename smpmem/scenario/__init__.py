"""The scenario language: TOML files describing a machine, its tunables and its processes.

``load_scenario(path)`` reads and validates a file into a frozen, typed
:class:`Scenario`; anything wrong raises one :class:`ScenarioError` whose
message names the file, the line, the field path and what is allowed. The
reference of every key is ``docs/scenarios.md``, generated from the schema
by ``python -m smpmem.scenario.docs``.
"""

from ._errors import Problem as Problem, ScenarioError as ScenarioError
from ._paths import scenario_dir as scenario_dir
from ._load import load_scenario as load_scenario, parse_scenario as parse_scenario
from ._schema import (
    Brk as Brk,
    Compute as Compute,
    Costs as Costs,
    Disk as Disk,
    Exit as Exit,
    ForEach as ForEach,
    File as File,
    Fork as Fork,
    Free as Free,
    Kmap as Kmap,
    LockStep as LockStep,
    Madvise as Madvise,
    Loop as Loop,
    Machine as Machine,
    Malloc as Malloc,
    Mmap as Mmap,
    Mprotect as Mprotect,
    Munmap as Munmap,
    Open as Open,
    Ops as Ops,
    Process as Process,
    Read as Read,
    Replay as Replay,
    Run as Run,
    Scenario as Scenario,
    Sleep as Sleep,
    SpawnThreads as SpawnThreads,
    Step as Step,
    STEP_TYPES as STEP_TYPES,
    Swap as Swap,
    Touch as Touch,
    Tunables as Tunables,
    Write as Write,
    Zone as Zone,
    Fsync as Fsync,
)
from ._units import parse_size as parse_size, parse_time as parse_time

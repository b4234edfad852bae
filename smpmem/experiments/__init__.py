"""Experiments: parameter sweeps and schedule exploration over many runs of one scenario.

``run_sweep`` runs a grid of parameter values × seeds (in parallel, on local
processes or a Dask cluster) and gathers the key figures of every run into
one table with plots; ``run_explore`` runs a scenario under many seeds with
the PCT schedule (``run.schedule = "pct"``) and the invariant checks on, and
reports the smallest seed that breaks an invariant, with its run directory
for replay. The command line is ``python -m smpmem sweep`` / ``explore``
(:mod:`smpmem.experiments.cli`); docs/experiments.md has the details.
"""

from ._common import ExperimentError as ExperimentError, Param as Param, parse_param as parse_param
from ._common import parse_seeds as parse_seeds
from .sweep import SweepResult as SweepResult, run_sweep as run_sweep

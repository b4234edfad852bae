"""The runtime: virtual time, CPUs and threads, locks, costs and the tracer. Knows nothing of memory."""

from .costs import CostModel as CostModel, DEFAULT_COSTS as DEFAULT_COSTS
from .cpu import CPU as CPU, IpiCall as IpiCall, Machine as Machine, Thread as Thread
from .engine import Actor as Actor, Deadlock as Deadlock, ModelBug as ModelBug, Simulator as Simulator
from .locks import (
    LockClass as LockClass,
    LockDep as LockDep,
    LockInversion as LockInversion,
    LockRegistry as LockRegistry,
    LockStatistics as LockStatistics,
    Mutex as Mutex,
    RWSemaphore as RWSemaphore,
    SpinLock as SpinLock,
)
from .tracer import Tracer as Tracer

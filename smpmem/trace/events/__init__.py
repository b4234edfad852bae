"""Importing this package registers every event type in the catalog."""

from . import lock, sched  # noqa: F401

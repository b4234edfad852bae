"""The event catalog and its renderers: pure data, importable by every layer.

Every event type is declared once, in one of the ``events_*`` modules, with
the kernel's tracepoint name, fields and ``TP_printk`` format where the kernel
has that tracepoint. The runtime tracer (``smpmem.sim.tracer``), the ftrace
text exporter and the analysis readers all read these declarations.
"""

from .catalog import CATALOG as CATALOG, EventType as EventType, define as define, lookup as lookup, select as select

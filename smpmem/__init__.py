"""smpmem: an executable, concurrent model of Linux memory management on a multiprocessor."""

__version__ = "0.1.0"

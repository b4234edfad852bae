"""``python -m smpmem``: the command line."""

from .cli import main

raise SystemExit(main())

"""Shared test set-up: the repository root on sys.path, so tests can import the `bench` package."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

"""Benchmarks run on demand: M3 accuracy and intervals, PBS hierarchy, drivers, intervals,
model cost, pipeline overhead."""

from __future__ import annotations

import logging
from pathlib import Path

__all__ = ["output_folder"]


def output_folder(path: str) -> Path:
    """Start a benchmark's command line: log its progress and make its output folder."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # schema creation: not the benchmark's news
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out

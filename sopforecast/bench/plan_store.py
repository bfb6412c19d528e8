"""How long the plan store takes at scale: write a plan version, read it back, apply 100
overrides (issue 21), on SQLite and on PostgreSQL.

A coherent synthetic forecast of ``--series`` bottom series under the demo hierarchy
(category/family/sku x region/channel: every aggregate level too) over ``--months`` months,
with 80% and 95% intervals, becomes a draft through the planning service (what the
pipeline's plan step calls), is read back (``PlanStore.lines``: what every planner command
reads) and takes a file of 100 overrides at every level through the function behind
``sopforecast override apply``. With ``--postgres`` the same runs on a PostgreSQL server
the benchmark starts in a temporary folder (the Debian ``postgresql`` package, as the
tests use) and stops afterwards.

Run ``python -m sopforecast.bench.plan_store --series 10000 --months 18 [--postgres]
[--output DIR]``.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from ..demo import DEMO_HIERARCHY
from ..planning import service
from ..planning.plan import draft_lines
from ..planning.workflow import apply_override_file
from ..store.plans import PlanStore
from . import output_folder
from .plan import demo_sized_plan

__all__ = ["synthetic_plan", "run", "postgres_server", "main"]

logger = logging.getLogger(__name__)

PLAN = "bench"


def synthetic_plan(n_series: int, months: int = 18, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Plan lines of every level (bottom values summed up, 80/95% intervals) and the bottom
    series with their keys, as :func:`~sopforecast.planning.plan.draft_lines` makes them."""
    history, forecast, _ = demo_sized_plan(n_series, months, seed)
    return draft_lines(forecast, history, DEMO_HIERARCHY, months=months)


def _overrides(lines: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """``n`` overrides (one per series and month) spread over every level and month."""
    rng = np.random.default_rng(seed)
    ids = lines["unique_id"].unique()
    months = np.sort(lines["ds"].unique())
    picked = pd.DataFrame({"key": rng.choice(ids, 4 * n), "ds": rng.choice(months, 4 * n)})
    picked = picked.drop_duplicates().head(n)
    return pd.DataFrame(
        {
            "key": picked["key"].to_numpy(),
            "month": pd.to_datetime(picked["ds"]).dt.strftime("%Y-%m").to_numpy(),
            "change_pct": rng.uniform(-20, 20, len(picked)).round(1),
            "author": "bench",
            "reason": "benchmark",
        }
    )


def run(store_url: str, n_series: int, months: int = 18, n_overrides: int = 100, seed: int = 0) -> dict:
    """Seconds to write a version, read it back and apply ``n_overrides`` overrides, with
    the plan's size."""
    start = time.perf_counter()
    lines, bottom = synthetic_plan(n_series, months, seed)
    made = time.perf_counter() - start
    seconds: dict[str, float] = {}

    def timed(name, fn):
        clock = time.perf_counter()
        out = fn()
        seconds[name] = time.perf_counter() - clock
        return out

    plans = PlanStore(store_url)
    try:
        version = timed("write", lambda: service.create_version(plans, PLAN, lines, bottom, DEMO_HIERARCHY))
        read = timed("read", lambda: plans.lines(version))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "overrides.csv"
            _overrides(read, n_overrides, seed).to_csv(path, index=False)
            written, result = timed(
                f"{n_overrides} overrides",
                lambda: apply_override_file(plans, path, plan=PLAN, version=str(version.id)),
            )
        applied = len(result.applied)
    finally:
        plans.dispose()
    return {
        "seconds": seconds,
        "bottom_series": int(len(bottom)),
        "series": int(read["unique_id"].nunique()),
        "lines": int(len(read)),
        "overrides_applied": int(applied),
        "version": written.name,
        "make_plan_seconds": made,
    }


# -------------------------------------------------------------------------- PostgreSQL
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> None:
    if os.geteuid() == 0:  # the server refuses to run as root
        cmd = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(cmd)]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)


@contextmanager
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server of the Debian ``postgresql`` package started in a temporary folder
    (as the tests start theirs), with a ``bench`` database; its psycopg URL. Stopped and
    removed on exit."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        raise SystemExit("PostgreSQL server binaries not found: apt-get install postgresql")
    bindir = Path(bins[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="sopforecast-bench-pg-"))
    data = root / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(data, "postgres")
    port = _free_port()
    try:
        _as_postgres([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"])
        opts = f"'-p {port} -k {data} -c listen_addresses=127.0.0.1'"
        log = root / "server.log"
        _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "start"])
        try:
            import psycopg

            with psycopg.connect(
                host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True
            ) as conn:
                conn.execute('CREATE DATABASE "bench"')
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/bench"
        finally:
            _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sopforecast.bench.plan_store", description=__doc__)
    parser.add_argument("--series", type=int, default=10_000, help="Bottom series (default 10000).")
    parser.add_argument("--months", type=int, default=18)
    parser.add_argument("--overrides", type=int, default=100)
    parser.add_argument("--postgres", action="store_true", help="Also on a PostgreSQL server it starts.")
    parser.add_argument("--output", default="sopforecast-work/benchmarks/plan_store")
    args = parser.parse_args(argv)
    out = output_folder(args.output)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = run(f"sqlite:///{tmp}/plans.db", args.series, args.months, args.overrides)
    if args.postgres:
        with postgres_server() as url:
            results["postgresql"] = run(url, args.series, args.months, args.overrides)
    (out / "plan_store_seconds.json").write_text(json.dumps(results, indent=2))
    for store, result in results.items():
        logger.info(
            "%s: %d series (%d bottom) x %d months = %d lines",
            store,
            result["series"],
            result["bottom_series"],
            args.months,
            result["lines"],
        )
        for name, value in result["seconds"].items():
            logger.info("  %-16s %7.2f s", name, value)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Two planners at once, for real: several processes run ``sopforecast override apply`` (and
``override revert``, ``plan publish``) on the same store at the same instant, on SQLite and
on a real PostgreSQL server, many rounds. Every command that exits 0 must have its override
in the audit *and* in the plan lines, the cycle must keep one open draft, and readers must
never wait for a writer.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import test_plan_store as base

from sopforecast.planning import service
from sopforecast.planning.lines import summing
from sopforecast.planning.plan import draft_lines
from sopforecast.store.plans import PlanStore

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
HIERARCHY = ["category/sku", "region"]
KEYS = ["category", "sku", "region"]
BOTTOM = [(c, f"{c}-S{s}", r) for c in ("C1", "C2") for s in range(3) for r in ("R1", "R2")]
FIRST = pd.Timestamp("2026-01-01")
MONTHS = 6
WORKERS = 4

# waits for the go file, then runs the CLI in-process: every worker starts its command at once
DRIVER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from sopforecast.cli import main
    go, ready, argv = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    ready.touch()
    while not go.exists():
        time.sleep(0.0005)
    sys.exit(main(argv))
    """
)


store_url = base.store_url  # a new SQLite file, or a fresh database on the session's server


def _plan(url: str) -> PlanStore:
    """A store with one draft plan: 12 bottom series under category/sku x region, 6 months."""
    rng = np.random.default_rng(3)
    bottom = pd.DataFrame(BOTTOM, columns=KEYS)
    bottom.insert(0, "unique_id", bottom[KEYS].agg("/".join, axis=1))
    S, _ = summing(bottom, HIERARCHY)
    past = pd.date_range(FIRST - pd.DateOffset(months=12), periods=12, freq="MS")
    history = pd.concat([bottom.assign(ds=d, y=rng.uniform(20, 90, len(bottom))) for d in past])
    future = pd.date_range(FIRST, periods=MONTHS, freq="MS")
    base = rng.uniform(50, 150, (len(bottom), MONTHS))
    parts = [
        pd.DataFrame(S.to_numpy() @ (base * k), index=S.index, columns=future).stack().rename(name)
        for name, k in (("forecast", 1.0), ("forecast-lo-80", 0.8), ("forecast-hi-80", 1.2))
    ]
    forecast = pd.concat(parts, axis=1).rename_axis(["unique_id", "ds"]).reset_index()
    lines, bottom_out = draft_lines(
        forecast, history[["unique_id", "ds", "y", *KEYS]], HIERARCHY, months=MONTHS
    )
    store = PlanStore(url)
    service.create_version(store, "demand", lines, bottom_out, HIERARCHY)
    return store


def _run_at_once(commands: list[list[str]], tmp_path: Path, round_: int) -> list[subprocess.CompletedProcess]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env["SOPFORECAST_USER"] = "tester"
    go = tmp_path / f"go{round_}"
    ready = [tmp_path / f"ready{round_}_{i}" for i in range(len(commands))]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DRIVER, str(go), str(r), *cmd],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r, cmd in zip(ready, commands, strict=True)
    ]
    try:
        deadline = time.monotonic() + 120
        while not all(r.exists() for r in ready):
            assert all(p.poll() is None for p in procs), [p.communicate()[1][-2000:] for p in procs]
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.01)
        go.touch()
        outs = [p.communicate(timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [
        subprocess.CompletedProcess(p.args, p.returncode, out, err)
        for p, (out, err) in zip(procs, outs, strict=True)
    ]


def _cli(env: dict, cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    """Run ``sopforecast ARGV`` in a new process."""
    return subprocess.run(
        [sys.executable, "-m", "sopforecast", *argv], capture_output=True, text=True, env=env, cwd=cwd
    )


def _override_file(path: Path, key: str, month: str, value: float, author: str) -> Path:
    pd.DataFrame(
        [{"key": key, "month": month, "value": value, "author": author, "reason": "concurrency test"}]
    ).to_csv(path, index=False)
    return path


def _check(store: PlanStore, expected: dict[tuple[str, str], float]) -> None:
    """The cycle has one open draft; every expected override is active there and in its lines."""
    listed = store.versions("demand")
    drafts = listed[listed["status"] == "draft"]
    assert len(drafts) == 1, listed[["id", "name", "status"]]
    draft = store.version(int(drafts["id"].item()))
    active = store.overrides(draft)
    active = active[active["reverted_at"].isna()]
    got = {
        (k, f"{d:%Y-%m}"): float(v)
        for k, d, v in zip(active["key"], active["ds"], active["value"], strict=True)
    }
    assert got == expected  # nothing lost, nothing doubled
    lines = store.lines(draft).set_index(["unique_id", "ds"])["final"]
    for (key, month), value in expected.items():
        assert lines[(key, pd.Timestamp(f"{month}-01"))] == pytest.approx(value, rel=1e-9), (key, month)


def test_concurrent_planner_commands_keep_every_override(store_url, tmp_path):
    store = _plan(store_url)
    bottom = [f"{c}/{s}/{r}" for c, s, r in BOTTOM]
    months = [f"{d:%Y-%m}" for d in pd.date_range(FIRST, periods=MONTHS, freq="MS")]
    expected: dict[tuple[str, str], float] = {}
    cell = iter((k, m) for m in months for k in bottom)  # a distinct bottom line per override
    base = ["--store", store_url]
    for round_ in range(6):
        if round_ in (2, 4):  # publish: the next round's overrides all land on one new draft
            done = _run_at_once([["plan", "publish", "2026-01", *base]], tmp_path, 100 + round_)
            assert done[0].returncode == 0, done[0].stderr
        commands, wanted = [], {}
        for i in range(WORKERS):
            key, month = next(cell)
            value = float(1000 + 10 * round_ + i)
            path = _override_file(tmp_path / f"o{round_}_{i}.csv", key, month, value, f"planner{i}")
            commands.append(["override", "apply", str(path), *base])
            wanted[(key, month)] = value
        if round_ == 5:  # and a revert of an earlier override at the same instant
            gone = next(iter(expected))
            row = store.overrides(plan="demand")
            row = row[(row["key"] == gone[0]) & (row["ds"] == pd.Timestamp(f"{gone[1]}-01"))]
            commands.append(["override", "revert", str(int(row["id"].min())), "--reason", "race", *base])
        results = _run_at_once(commands, tmp_path, round_)
        for r in results:
            assert r.returncode == 0, r.stderr[-3000:]
        expected.update(wanted)
        if round_ == 5:
            expected.pop(gone)
        _check(store, expected)
    store.dispose()


def test_reads_do_not_wait_for_a_writer_and_a_busy_store_names_its_holder(tmp_path):
    url = f"sqlite:///{tmp_path / 'plans.db'}"
    _plan(url).dispose()
    override = _override_file(tmp_path / "o.csv", "C1/C1-S0/R1", "2026-02", 77.0, "ana")
    env = {**os.environ, "SOPFORECAST_USER": "tester", "SOPFORECAST_STORE_TIMEOUT": "1"}
    holder = sqlite3.connect(tmp_path / "plans.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another tool holds the write lock
    try:
        started = time.monotonic()
        listed = _cli(env, tmp_path, "plan", "list", "--store", url, "--format", "csv")
        assert listed.returncode == 0, listed.stderr
        assert "2026-01 v1" in listed.stdout and time.monotonic() - started < 20
        applied = _cli(env, tmp_path, "override", "apply", str(override), "--store", url)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert applied.returncode == 2
    assert "busy" in applied.stderr and "not a sopforecast command" in applied.stderr
    assert "Traceback" not in applied.stderr and "nothing was changed" in applied.stderr
    store = PlanStore(url)
    assert store.overrides(plan="demand").empty
    store.dispose()


HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from sopforecast.store import engine
    from sopforecast.store.plans import PlanStore
    store = PlanStore(sys.argv[1])
    with engine.writing(store.engine, store.where):
        Path(sys.argv[2]).touch()
        time.sleep(8)
    """
)


def test_a_busy_store_names_the_sopforecast_command_holding_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'plans.db'}"
    _plan(url).dispose()
    override = _override_file(tmp_path / "o.csv", "C1/C1-S0/R1", "2026-02", 77.0, "ana")
    env = {**os.environ, "SOPFORECAST_USER": "ana", "SOPFORECAST_STORE_TIMEOUT": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    holding = tmp_path / "holding"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, url, str(holding)], env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not holding.exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        applied = _cli(env, tmp_path, "override", "apply", str(override), "--store", url)
    finally:
        holder.kill()
        holder.wait()
    assert applied.returncode == 2, applied.stderr
    assert f"pid {holder.pid}" in applied.stderr and "ana" in applied.stderr
    assert "more than 1 s" in applied.stderr and "Traceback" not in applied.stderr

"""The plan-store benchmark (issue 21) runs end to end at a small size on SQLite; the 10k
series run is ``slow``."""

from __future__ import annotations

import json

import pytest

from sopforecast.bench import plan_store


def test_bench_writes_reads_and_overrides_a_small_plan(tmp_path):
    result = plan_store.run(f"sqlite:///{tmp_path / 'plans.db'}", n_series=200, months=18, n_overrides=100)
    assert set(result["seconds"]) == {"write", "read", "100 overrides"}
    assert result["lines"] == result["series"] * 18 and result["series"] > result["bottom_series"]
    assert result["overrides_applied"] == 100


def test_bench_command_line(tmp_path):
    assert (
        plan_store.main(["--series", "60", "--months", "6", "--overrides", "10", "--output", str(tmp_path)])
        == 0
    )
    saved = json.loads((tmp_path / "plan_store_seconds.json").read_text())
    assert saved["sqlite"]["lines"] == saved["sqlite"]["series"] * 6


@pytest.mark.slow
def test_bench_at_10k_series(tmp_path):
    result = plan_store.run(f"sqlite:///{tmp_path / 'plans.db'}", n_series=10_000, months=18)
    assert result["overrides_applied"] == 100 and result["seconds"]["write"] < 60

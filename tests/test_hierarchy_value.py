"""The Hierarchy value: levels, ids, the sparse summing matrix and the key-path helpers."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from sopforecast.data.hierarchy import FLAT, Hierarchy, key_columns, split_path
from sopforecast.errors import DataError

HIERARCHY = ["category/sku", "region"]
BOTTOM = pd.DataFrame(
    {
        "unique_id": ["A1/N", "A1/S", "A2/N", "B1/S"],
        "category": ["A", "A", "A", "B"],
        "sku": ["A1", "A1", "A2", "B1"],
        "region": ["N", "S", "N", "S"],
    }
)


def test_grouped_levels_ids_and_summing_matrix_by_hand():
    h = Hierarchy.from_bottom(BOTTOM, HIERARCHY)
    assert h.chains == [["category", "sku"], ["region"]]
    assert h.keys == ["category", "sku", "region"]
    assert h.level_names == [
        "Total",
        "category",
        "region",
        "category/sku",
        "category/region",
        "category/sku/region",
    ]
    assert list(h.bottom_ids) == ["A1/N", "A1/S", "A2/N", "B1/S"]
    expected = {
        "Total": [1, 1, 1, 1],
        "A": [1, 1, 1, 0],
        "B": [0, 0, 0, 1],
        "N": [1, 0, 1, 0],
        "S": [0, 1, 0, 1],
        "A/A1": [1, 1, 0, 0],
        "A/A2": [0, 0, 1, 0],
        "B/B1": [0, 0, 0, 1],
        "A/N": [1, 0, 1, 0],
        "A/S": [0, 1, 0, 0],
        "B/S": [0, 0, 0, 1],
        "A1/N": [1, 0, 0, 0],
        "A1/S": [0, 1, 0, 0],
        "A2/N": [0, 0, 1, 0],
        "B1/S": [0, 0, 0, 1],
    }
    assert list(h.ids) == list(expected)
    assert sp.isspmatrix_csr(h.S)
    np.testing.assert_array_equal(h.S.toarray(), np.array(list(expected.values()), dtype=float))
    levels = h.level_of()
    assert levels["Total"] == "Total" and levels["N"] == "region" and levels["A/S"] == "category/region"
    assert levels["B1/S"] == "category/sku/region"
    assert list(h.ids_of("category")) == ["A", "B"]


def test_flat_data_is_one_level_with_an_identity_matrix():
    h = Hierarchy.from_bottom(BOTTOM[["unique_id"]], [])
    assert h.flat and h.level_names == [FLAT]
    assert list(h.ids) == sorted(BOTTOM["unique_id"]) and list(h.bottom_ids) == list(BOTTOM["unique_id"])
    assert h.S.nnz == len(BOTTOM)
    np.testing.assert_array_equal(h.S.toarray(), np.eye(len(BOTTOM)))
    assert set(h.level_of()) == {FLAT}


def test_members_and_bottom_of():
    h = Hierarchy.from_bottom(BOTTOM, HIERARCHY)
    members = h.members()
    assert list(members.columns) == ["unique_id", "bottom"]
    assert len(members) == h.S.nnz == 4 * 6
    assert sorted(members.loc[members["unique_id"] == "A", "bottom"]) == ["A1/N", "A1/S", "A2/N"]
    assert list(h.bottom_of("S")) == ["A1/S", "B1/S"]
    assert list(h.bottom_of("B1/S")) == ["B1/S"]
    with pytest.raises(DataError, match="no series 'Z'"):
        h.bottom_of("Z")


def test_key_values_leave_keys_below_the_level_empty():
    keys = Hierarchy.from_bottom(BOTTOM, HIERARCHY).key_values()
    assert list(keys.columns) == ["category", "sku", "region"]
    assert keys.loc["A/S"].tolist()[0] == "A" and pd.isna(keys.loc["A/S", "sku"])
    assert keys.loc["A/S", "region"] == "S"
    assert keys.loc["Total"].isna().all()
    assert keys.loc["A2/N"].tolist() == ["A", "A2", "N"]


def test_parsing_key_paths():
    assert key_columns(["category/family/sku", "region"]) == ["category", "family", "sku", "region"]
    assert key_columns([" category / sku ", ""]) == ["category", "sku"]
    assert key_columns([]) == []
    assert split_path("Beverages/Juice") == ["Beverages", "Juice"]
    assert split_path("category/") == ["category"]


def test_missing_key_column_is_named():
    with pytest.raises(DataError, match="region"):
        Hierarchy.from_bottom(BOTTOM.drop(columns="region"), HIERARCHY)


def test_repeated_rows_count_once():
    long = pd.concat([BOTTOM, BOTTOM], ignore_index=True)
    assert Hierarchy.from_bottom(long, HIERARCHY).S.shape == (15, 4)


@pytest.mark.parametrize("hierarchy", [[], ["category/family/sku"]])
def test_100k_bottom_series_give_a_sparse_matrix(hierarchy):
    n = 100_000
    sku = np.arange(n)
    bottom = pd.DataFrame(
        {
            "unique_id": [f"s{i}" for i in sku],
            "category": sku % 7,
            "family": sku % 70,
            "sku": [f"s{i}" for i in sku],
        }
    )
    start = time.perf_counter()
    h = Hierarchy.from_bottom(bottom, hierarchy)
    seconds = time.perf_counter() - start
    levels = len(h.level_names)
    assert h.S.shape == (len(h.ids), n)
    assert h.S.nnz == n * levels
    assert levels == (1 if not hierarchy else 4)
    print(f"Hierarchy of {n} bottom series, {levels} level(s): {seconds:.2f} s")


def test_rows_columns_and_sizes_read_like_the_summing_frame():
    h = Hierarchy.from_bottom(BOTTOM, HIERARCHY)
    assert h.index.name == "unique_id" and list(h.index) == list(h.ids)
    assert list(h.columns) == list(h.bottom_ids) and len(h) == 15
    np.testing.assert_array_equal(h.to_numpy(), h.S.toarray())
    sizes = h.sizes()
    assert sizes["Total"] == 4 and sizes["A"] == 3 and sizes["S"] == 2 and sizes["A2/N"] == 1

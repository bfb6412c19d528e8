"""The sparse weighted least-squares reconciliation: the closed form of MinTrace with a
diagonal covariance, solved without forming the dense normal matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from sopforecast.data.hierarchy import Hierarchy
from sopforecast.forecasting.sparse_wls import error_variance, structural_weights, wls_reconcile


def _hierarchy(n_items=40, seed=0) -> Hierarchy:
    rng = np.random.default_rng(seed)
    bottom = pd.DataFrame(
        {
            "cat": rng.choice(["A", "B", "C"], n_items),
            "item": [f"i{k}" for k in range(n_items)],
            "region": rng.choice(["N", "S"], n_items),
        }
    )
    bottom["unique_id"] = bottom[["cat", "item", "region"]].agg("/".join, axis=1)
    return Hierarchy.from_bottom(bottom.sort_values("unique_id"), ["cat/item/region", "region"])


def _closed_form(S: np.ndarray, base: np.ndarray, variance: np.ndarray) -> np.ndarray:
    Wi = np.diag(1.0 / variance)
    return S @ np.linalg.solve(S.T @ Wi @ S, S.T @ Wi @ base)


@pytest.mark.parametrize("kind", ["ols", "wls_struct", "wls_var"])
def test_matches_the_closed_form_on_every_horizon(kind):
    h = _hierarchy()
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 100, (len(h), 7))
    variance = {
        "ols": np.ones(len(h)),
        "wls_struct": structural_weights(h.S),
        "wls_var": rng.uniform(0.5, 50, len(h)),
    }[kind]
    out = wls_reconcile(h.S, base, variance)
    np.testing.assert_allclose(out, _closed_form(h.to_numpy(), base, variance), rtol=1e-6, atol=1e-6)
    bottom = out[-len(h.bottom_ids) :]
    np.testing.assert_allclose(h.S @ bottom, out, atol=1e-9)  # coherent by construction


def test_a_coherent_base_is_left_as_it_is():
    h = _hierarchy()
    base = h.S @ np.random.default_rng(2).uniform(0, 10, (len(h.bottom_ids), 3))
    np.testing.assert_allclose(wls_reconcile(h.S, base, np.linspace(1, 5, len(h))), base, rtol=1e-6)


def test_structural_weights_count_the_bottom_series_under_each_series():
    S = sp.csr_matrix(np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]))
    assert structural_weights(S).tolist() == [3, 2, 1, 1, 1]


def test_error_variance_is_per_series_with_ddof_1_in_the_order_asked():
    res = pd.DataFrame({"unique_id": list("aabbb"), "y": [1, 3, 0, 0, 0], "forecast": [0, 0, 1, 2, 3]})
    np.testing.assert_allclose(error_variance(res, np.array(["b", "a"])), [1.0, 2.0])


def test_refuses_a_variance_it_cannot_invert():
    h = _hierarchy()
    variance = np.ones(len(h))
    variance[3] = 0.0
    with pytest.raises(ValueError, match="at least 1e-8"):
        wls_reconcile(h.S, np.ones((len(h), 2)), variance)

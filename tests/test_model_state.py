"""The registered model's state as plain files (sopforecast.forecasting.state): no pickle,
and a reloaded forecaster predicts exactly what the fitted one does (hierarchy with drivers
and LightGBM, and flat data); the Hierarchy's own folder round trip; a model registered by
an earlier version (forecaster.pkl) still loads."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import sopforecast as sf
from sopforecast.data.datasets import generate_demand
from sopforecast.data.hierarchy import Hierarchy
from sopforecast.forecasting.state import is_state, load_state, save_state
from sopforecast.pipeline.model import (
    ARTIFACT,
    ForecasterModel,
    find_forecaster,
    load_forecaster,
    predict_with,
    save_artifacts,
)

HIERARCHY = ["category/family/sku", "region/channel"]
DRIVERS = ["price", "promo"]


def _history(n: int, hierarchy: list[str], drivers: list[str]) -> pd.DataFrame:
    raw = generate_demand(n_series=n, periods=48, seed=3)
    if not hierarchy:  # flat: the key path as the id, no key columns
        raw = raw.assign(
            unique_id=raw[["category", "family", "sku", "region", "channel"]].agg("/".join, axis=1)
        )
        raw = raw[["unique_id", "ds", "y", *drivers]]
    return sf.validate(raw, sf.DataConfig(hierarchy=hierarchy, drivers=drivers)).frame


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    """A hierarchy with drivers and LightGBM, fitted, saved and loaded back."""
    history = _history(10, HIERARCHY, DRIVERS)
    config = sf.ForecastConfig(
        horizon=6,
        windows=2,
        models=["ets", "snaive", "lgbm"],
        hierarchy=HIERARCHY,
        drivers=DRIVERS,
        future_fill="carry",
        n_jobs=1,
    )
    fitted = sf.Forecaster(config).fit(history)
    folder = save_state(fitted, tmp_path_factory.mktemp("grouped") / "state")
    return fitted, load_state(folder), folder


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    history = _history(6, [], [])
    config = sf.ForecastConfig(horizon=6, windows=2, models=["ets", "theta", "snaive"], n_jobs=1)
    fitted = sf.Forecaster(config).fit(history)
    folder = save_state(fitted, tmp_path_factory.mktemp("flat") / "state")
    return fitted, load_state(folder), folder


def _promotion(fitted) -> pd.DataFrame:
    """Every bottom series' last drivers for 6 months, one series on promotion in month 3."""
    bottom = fitted.panel_.bottom
    last = bottom.sort_values("ds").groupby("unique_id").tail(1)
    months = pd.date_range(last["ds"].max(), periods=7, freq="MS")[1:]
    plan = last[["unique_id", *DRIVERS]].merge(pd.DataFrame({"ds": months}), how="cross")
    first = sorted(plan["unique_id"])[0]
    plan.loc[(plan["unique_id"] == first) & (plan["ds"] == months[2]), "promo"] = 1.0
    return plan


def test_the_state_holds_no_pickle_and_the_booster_as_text(grouped):
    _, _, folder = grouped
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert not [f for f in files if f.endswith((".pkl", ".pickle"))]
    assert {
        "state.json",
        "config.json",
        "history.parquet",
        "lightgbm/booster.txt",
        "hierarchy/S.npz",
    } <= files
    assert (folder / "lightgbm" / "booster.txt").read_text().startswith("tree")


def test_hierarchy_drivers_and_lightgbm_predict_exactly_as_fitted(grouped):
    fitted, loaded, _ = grouped
    assert loaded.ml_ is not None and loaded.config == fitted.config
    assert "LightGBM" in fitted.predict().candidates.columns  # LightGBM really forecast
    pd.testing.assert_frame_equal(loaded.predict().forecast, fitted.predict().forecast, check_exact=True)
    pd.testing.assert_frame_equal(
        loaded.predict(h=3).forecast, fitted.predict(h=3).forecast, check_exact=True
    )
    plan = _promotion(fitted)
    moved = fitted.predict(future=plan).forecast
    pd.testing.assert_frame_equal(loaded.predict(future=plan).forecast, moved, check_exact=True)
    assert not moved.equals(fitted.predict().forecast)  # the promotion moved the forecast
    some = plan[plan["unique_id"] == plan["unique_id"].min()]
    pd.testing.assert_frame_equal(
        predict_with(loaded, some, aggregates=True),
        predict_with(fitted, some, aggregates=True),
        check_exact=True,
    )


def test_a_loaded_forecaster_saves_again(grouped, tmp_path):
    fitted, loaded, _ = grouped
    again = load_state(save_state(loaded, tmp_path / "again"))
    pd.testing.assert_frame_equal(again.predict().forecast, fitted.predict().forecast, check_exact=True)


def test_a_flat_panel_predicts_exactly_as_fitted(flat):
    fitted, loaded, folder = flat
    assert loaded.panel_.hierarchy is None and not (folder / "hierarchy").exists()
    pd.testing.assert_frame_equal(loaded.predict().forecast, fitted.predict().forecast, check_exact=True)
    ask = pd.DataFrame({"unique_id": [fitted.panel_.Y["unique_id"].iloc[0]], "horizon": [4]})
    pd.testing.assert_frame_equal(predict_with(loaded, ask), predict_with(fitted, ask), check_exact=True)


def test_the_loaded_panel_selection_and_intervals_are_the_fitted_ones(grouped):
    fitted, loaded, _ = grouped
    pd.testing.assert_frame_equal(loaded.panel_.Y, fitted.panel_.Y)
    pd.testing.assert_frame_equal(loaded.panel_.bottom, fitted.panel_.bottom)
    pd.testing.assert_frame_equal(loaded.selection_, fitted.selection_)
    assert isinstance(loaded.selection_["members"].iloc[0], tuple)
    pd.testing.assert_series_equal(loaded.panel_.levels, fitted.panel_.levels)
    for part in ("scale", "growth", "quantile", "demand_ratio"):
        expected, got = getattr(fitted.errors_, part), getattr(loaded.errors_, part)
        assert type(got) is type(expected)
        if isinstance(expected, pd.DataFrame):
            pd.testing.assert_frame_equal(got, expected)
        else:
            pd.testing.assert_series_equal(got, expected)


@pytest.mark.parametrize("hierarchy", [["category/sku", "region"], []])
def test_hierarchy_folder_round_trip(tmp_path, hierarchy):
    bottom = pd.DataFrame(
        {
            "unique_id": ["A/A1/N", "A/A1/S", "A/A2/N", "B/B1/S"],
            "category": ["A", "A", "A", "B"],
            "sku": ["A1", "A1", "A2", "B1"],
            "region": ["N", "S", "N", "S"],
        }
    )
    h = Hierarchy.from_bottom(bottom, hierarchy)
    back = Hierarchy.from_folder(h.to_folder(tmp_path / "h"))
    assert (back.chains, back.keys, back.levels, back.level_names) == (
        h.chains,
        h.keys,
        h.levels,
        h.level_names,
    )
    for name in ("ids", "level", "bottom_ids"):
        assert getattr(back, name).dtype == object
        np.testing.assert_array_equal(getattr(back, name), getattr(h, name))
    assert (back.S != h.S).nnz == 0 and back.S.shape == h.S.shape and back.S.format == "csr"
    pd.testing.assert_frame_equal(back.key_values(), h.key_values())
    pd.testing.assert_frame_equal(back.members(), h.members())


def test_save_artifacts_writes_the_state_folder_and_the_pyfunc_loads_it(flat, tmp_path):
    fitted, _, _ = flat
    artifacts = save_artifacts(tmp_path / "files", fitted)
    assert is_state(artifacts[ARTIFACT]) and find_forecaster(tmp_path) == tmp_path / "files" / ARTIFACT
    model = ForecasterModel()
    model.load_context(SimpleNamespace(artifacts=artifacts))
    pd.testing.assert_frame_equal(
        model.predict(None, pd.DataFrame({"horizon": [6]})), fitted.predict().forecast, check_exact=True
    )


def test_a_model_registered_by_an_earlier_version_still_loads(flat, tmp_path):
    """Earlier versions logged the pickled forecaster as ``forecaster.pkl``."""
    fitted, _, _ = flat
    old = tmp_path / "artifacts" / "forecaster.pkl"
    old.parent.mkdir()
    old.write_bytes(pickle.dumps(fitted))
    assert find_forecaster(tmp_path) == old
    model = ForecasterModel()
    model.load_context(SimpleNamespace(artifacts={ARTIFACT: str(old)}))
    pd.testing.assert_frame_equal(
        model.predict(None, pd.DataFrame({"horizon": [6]})), fitted.predict().forecast, check_exact=True
    )
    assert load_forecaster(old).config == fitted.config


def test_a_hierarchy_pickled_before_the_hierarchy_value_still_reconciles(grouped, tmp_path):
    """Champions registered before issue 21 hold a panel with a dense summing frame ``S``
    (no ``hierarchy``) and a config without the settings added since; read as they are, the
    panel's hierarchy would be None and predict would skip reconciliation without a word."""
    fitted, _, _ = grouped
    old = pickle.loads(pickle.dumps(fitted))
    structure = vars(old.panel_).pop("hierarchy")
    dense = pd.DataFrame(structure.to_numpy(), columns=structure.bottom_ids)
    vars(old.panel_)["S"] = dense.assign(unique_id=structure.ids)[["unique_id", *structure.bottom_ids]]
    del vars(old.config)["reconcile_sparse_above"]
    path = tmp_path / "forecaster.pkl"
    path.write_bytes(pickle.dumps(old))
    loaded = load_forecaster(path)
    assert loaded.panel_.hierarchy is not None and "S" not in vars(loaded.panel_)
    assert loaded.config == fitted.config
    pd.testing.assert_frame_equal(loaded.predict().forecast, fitted.predict().forecast, check_exact=True)

"""The fitted forecaster as an MLflow pyfunc model.

What the pipeline learned is the selection: which model or combination each series gets,
and the backtest errors behind its conformal intervals. The model carries that selection,
the history and the configuration; ``predict`` re-estimates each series' chosen models on
the history (statistical models fit in seconds and need the full history anyway) and
returns the forecast frame, reconciled for hierarchies.

Input: a frame with one row and a ``horizon`` column, or the future drivers
(``unique_id, ds, <drivers>``), whose dates set the horizon. Output: ``unique_id, ds,
forecast, forecast-lo-80, ..., model`` (and ``level`` for hierarchies).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd

try:  # mlflow is a runtime dependency; the import guard keeps this module importable alone
    from mlflow.pyfunc import PythonModel
except ImportError:  # pragma: no cover
    PythonModel = object

from ..config import ForecastConfig
from ..errors import ConfigError

__all__ = ["Forecaster", "save_artifacts", "predict_with"]

ARTIFACTS = ("history", "selection", "chosen_cv", "config")


def save_artifacts(folder: Path, history, config: ForecastConfig, backtest) -> dict[str, str]:
    """Write what the model needs into ``folder``; return MLflow's artifacts mapping."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.parquet" for name in ARTIFACTS[:3]}
    history.to_parquet(paths["history"], index=False)
    if backtest is not None and backtest.selection is not None:
        sel = backtest.selection.per_series[["unique_id", "members", "how"]].copy()
        sel["members"] = sel["members"].map(list)
        sel.to_parquet(paths["selection"], index=False)
        backtest.chosen_cv.to_parquet(paths["chosen_cv"], index=False)
    else:
        pd.DataFrame({"unique_id": [], "members": [], "how": []}).to_parquet(paths["selection"])
        pd.DataFrame().to_parquet(paths["chosen_cv"])
    (folder / "config.json").write_text(config.model_dump_json(indent=2))
    return {**{k: str(v) for k, v in paths.items()}, "config": str(folder / "config.json")}


def _stored_backtest(selection: pd.DataFrame, chosen_cv: pd.DataFrame):
    from ..forecasting.engine import BacktestResult
    from ..forecasting.selection import Selection

    if selection.empty:
        return None
    sel = selection.assign(members=selection["members"].map(tuple))
    empty = pd.DataFrame()
    return BacktestResult(empty, empty, empty, Selection(sel, empty), chosen_cv)


def _horizon(model_input: pd.DataFrame, config: ForecastConfig) -> tuple[int, pd.DataFrame | None]:
    if model_input is None or len(model_input) == 0:
        return config.horizon, None
    if "horizon" in model_input.columns:
        h = int(model_input["horizon"].iloc[0])
        if h <= 0:
            raise ConfigError(f"horizon must be a positive number of periods, got {h}.")
        return h, None
    if {"unique_id", "ds"} <= set(model_input.columns):
        future = model_input.assign(ds=pd.to_datetime(model_input["ds"]))
        return int(future.groupby("unique_id").size().max()), future
    raise ConfigError(
        "model input needs a 'horizon' column (one row) or future drivers with unique_id, ds "
        f"and the driver columns; got columns {list(model_input.columns)}."
    )


def predict_with(history, config: ForecastConfig, selection, chosen_cv, model_input) -> pd.DataFrame:
    """Forecast with a stored selection (the pyfunc's body, usable without MLflow)."""
    from ..forecasting.api import forecast_hierarchy
    from ..forecasting.engine import run_forecast

    h, future = _horizon(model_input, config)
    cfg = config.model_copy(update={"horizon": h})
    backtest = _stored_backtest(selection, chosen_cv)
    if cfg.hierarchy:
        return forecast_hierarchy(history, cfg, backtest=backtest).forecast
    return run_forecast(history, cfg, future=future, backtest=backtest).forecast


with warnings.catch_warnings():  # MLflow nags about type hints on predict; input is a frame
    warnings.simplefilter("ignore", UserWarning)

    class Forecaster(PythonModel):
        """MLflow pyfunc wrapper of a pipeline's fitted forecaster."""

        def load_context(self, context) -> None:
            art = context.artifacts
            self.history = pd.read_parquet(art["history"])
            self.selection = pd.read_parquet(art["selection"])
            self.chosen_cv = pd.read_parquet(art["chosen_cv"])
            self.config = ForecastConfig.model_validate(json.loads(Path(art["config"]).read_text()))

        def predict(self, context, model_input, params=None):  # noqa: ARG002 - MLflow's signature
            return predict_with(self.history, self.config, self.selection, self.chosen_cv, model_input)

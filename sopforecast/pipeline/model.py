"""The fitted forecaster as an MLflow pyfunc model.

The pipeline logs the fitted :class:`~sopforecast.forecasting.forecaster.Forecaster` itself
(pickled: its selection, the statistical models' stored forecasts, the fitted LightGBM,
the backtest residuals behind the intervals, the hierarchy). ``predict`` never re-fits:
it combines the stored forecasts with the drivers given, attaches intervals and reconciles.

Input: a frame with one row and a ``horizon`` column, or the future drivers
(``unique_id`` or the key columns, ``ds``, the drivers), whose dates set the horizon. With
drivers for only some series, the others keep their last driver values and only the
series given (and, in a hierarchy, every aggregate) are returned. Output: ``unique_id, ds,
forecast, forecast-lo-80, ..., model`` (and ``level`` for hierarchies).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd

try:  # mlflow is a runtime dependency; the import guard keeps this module importable alone
    from mlflow.pyfunc import PythonModel
except ImportError:  # pragma: no cover
    PythonModel = object

from ..errors import ConfigError
from ..forecasting.drivers import series_ids

__all__ = ["ForecasterModel", "save_artifacts", "predict_with", "model_signature", "ARTIFACT"]

ARTIFACT = "forecaster"


def save_artifacts(folder: Path, forecaster) -> dict[str, str]:
    """Write the fitted forecaster (and its config, readable without unpickling) into
    ``folder``; return MLflow's artifacts mapping."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "forecaster.pkl"
    with path.open("wb") as fh:
        pickle.dump(forecaster, fh, protocol=pickle.HIGHEST_PROTOCOL)
    (folder / "config.json").write_text(forecaster.config.model_dump_json(indent=2))
    return {ARTIFACT: str(path), "config": str(folder / "config.json")}


def model_signature(forecaster, output: pd.DataFrame):
    """Input and output schema for the registry: every input column optional (a horizon,
    or the future drivers)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    config = forecaster.config
    inputs = [
        ColSpec("long", "horizon", required=False),
        ColSpec("string", "unique_id", required=False),
        ColSpec("datetime", "ds", required=False),
    ]
    keys = [k for chain in config.hierarchy for k in chain.split("/") if k]
    inputs += [ColSpec("string", k, required=False) for k in keys]
    inputs += [ColSpec("double", d, required=False) for d in config.drivers]
    kinds = {"unique_id": "string", "ds": "datetime", "model": "string", "level": "string"}
    outputs = [ColSpec(kinds.get(c, "double"), c) for c in output.columns]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def _request(model_input: pd.DataFrame | None, forecaster) -> tuple[int | None, pd.DataFrame | None]:
    """Horizon and future drivers from the model input."""
    config = forecaster.config
    if model_input is None or len(model_input) == 0:
        return None, None
    columns = set(model_input.columns)
    if "horizon" in columns and model_input["horizon"].notna().any():
        h = int(model_input["horizon"].dropna().iloc[0])
        if h <= 0:
            raise ConfigError(f"horizon must be a positive number of periods, got {h}.", setting="horizon")
        drivers = [d for d in config.drivers if d in columns]
        if not drivers or "ds" not in columns:
            return h, None
    if "ds" in columns:
        future = model_input.drop(columns=["horizon"], errors="ignore").dropna(axis=1, how="all")
        future = future.assign(ds=pd.to_datetime(future["ds"]))
        last = forecaster.panel_.Y["ds"].max()
        offset = pd.tseries.frequencies.to_offset(config.freq)
        steps = len(pd.date_range(last + offset, future["ds"].max(), freq=config.freq))
        return steps, future
    raise ConfigError(
        "model input needs a 'horizon' column (one row) or future drivers with unique_id (or the "
        f"key columns), ds and the drivers {config.drivers}; got columns {sorted(columns)}."
    )


def predict_with(forecaster, model_input: pd.DataFrame | None) -> pd.DataFrame:
    """Forecast with a fitted forecaster from a pyfunc input frame (usable without MLflow)."""
    h, future = _request(model_input, forecaster)
    if future is None:
        return forecaster.predict(h=h).forecast
    config = forecaster.config
    keys = [k for chain in config.hierarchy for k in chain.split("/") if k]
    if "unique_id" not in future.columns and keys and set(keys) <= set(future.columns):
        future = future.assign(unique_id=series_ids(future, keys))
    given = set(future["unique_id"]) if "unique_id" in future.columns else set()
    # series without drivers in the input keep their last values
    out = forecaster.predict(h=h, future=future, fill="carry").forecast
    if given:
        bottom = set(forecaster.panel_.bottom["unique_id"])
        keep = out["unique_id"].isin(given) | ~out["unique_id"].isin(bottom)
        out = out[keep].reset_index(drop=True)
    return out


class ForecasterModel(PythonModel):
    """MLflow pyfunc wrapper of a pipeline's fitted forecaster."""

    def load_context(self, context) -> None:
        with Path(context.artifacts[ARTIFACT]).open("rb") as fh:
            self.forecaster = pickle.load(fh)  # noqa: S301 - our own artifact

    # the type hints tell MLflow the input is a frame (checked against the logged signature)
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:  # noqa: ARG002
        return predict_with(self.forecaster, model_input)

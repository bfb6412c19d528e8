"""A fitted :class:`~sopforecast.forecasting.forecaster.Forecaster` as plain files, no pickle.

:func:`save_state` writes what ``predict`` reads into a folder; :func:`load_state` reads it
back into a forecaster that predicts exactly as the one saved, without re-fitting:

- ``state.json``: the format, the scalars and lists (short and discontinued series,
  timings, interval windows) and how each frame's labels are restored;
- ``config.json``: the :class:`~sopforecast.config.ForecastConfig`;
- ``history.parquet``: every series' history (aggregates included) with its drivers.
  ``predict`` reads all of it: LightGBM's series state (its local scaler uses each series'
  whole history), which drivers are flags, the last driver values carried forward, recent
  demand for intervals and the naive errors of reconciliation;
- ``bottom.parquet``, ``weights.parquet`` and ``hierarchy/`` for a hierarchy: the bottom
  series with their keys and drivers, the driver weights and
  :meth:`~sopforecast.data.hierarchy.Hierarchy.to_folder` (sparse ``S`` in CSR arrays);
- ``stats_wide.parquet``: the statistical models' stored forecasts; ``selection``,
  ``classes``, ``accuracy``, the backtest's ``chosen_cv`` and ``summary`` and the interval
  profile (``errors_*``) and the bias factors (``bias``) as Parquet;
- ``lightgbm/booster.txt``: the fitted LightGBM in its native text form, and
  ``lightgbm/series.parquet`` the ids it was fitted on. On load mlforecast's series state is
  rebuilt from the history with ``MLForecast.preprocess`` (no model is trained) and the
  booster predicts.

Not kept (``predict`` does not read them): every candidate's raw backtest (``backtest_.cv``,
``scores``, ``selection``) and the delivered backtest; a loaded forecaster has them empty.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import ForecastConfig
from ..data.hierarchy import Hierarchy
from .hierarchical import Panel

__all__ = ["save_state", "load_state", "is_state", "STATE_FILE", "FORMAT"]

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
FORMAT = 1
_ML = "lightgbm"


class _Booster:
    """A LightGBM booster where mlforecast expects a fitted regressor: ``predict(X)``, and
    ``booster_`` as LightGBM's regressor names it (a loaded forecaster saves again)."""

    def __init__(self, booster) -> None:
        self.booster_ = booster

    def predict(self, X):
        return self.booster_.predict(X)


def is_state(folder: str | Path) -> bool:
    """Whether ``folder`` holds a forecaster written by :func:`save_state`."""
    return (Path(folder) / STATE_FILE).is_file()


def save_state(forecaster, folder: str | Path) -> Path:
    """Write a fitted forecaster's predict-time state into ``folder`` (created).

    Parameters
    ----------
    forecaster : Forecaster
        Fitted.
    folder : str or pathlib.Path
        Where the files go; :func:`load_state` reads them back.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    panel = forecaster.panel_
    frames: dict[str, dict] = {}

    def put(name: str, value) -> None:
        if value is not None:
            frames[name] = _write(value, folder / f"{name}.parquet")

    put("history", panel.Y)
    if panel.hierarchy is not None:
        put("bottom", panel.bottom)
        put("weights", panel.weights)
        panel.hierarchy.to_folder(folder / "hierarchy")
    put("classes", forecaster.classes_)
    put("selection", forecaster.selection_)
    put("stats_wide", forecaster.stats_wide_)
    put("accuracy", forecaster.accuracy_)
    backtest = forecaster.backtest_
    if backtest is not None:
        put("chosen_cv", backtest.chosen_cv)
        put("summary", backtest.summary)
    bias = getattr(forecaster, "bias_", None)
    if bias is not None:
        put("bias", bias.table)
    errors = forecaster.errors_
    if errors is not None:
        for part in ("scale", "growth", "quantile", "demand_ratio"):
            put(f"errors_{part}", getattr(errors, part))
    if forecaster.ml_ is not None:
        _save_ml(forecaster.ml_, folder / _ML)
    (folder / "config.json").write_text(forecaster.config.model_dump_json(indent=2))
    meta = {
        "format": FORMAT,
        "frames": frames,
        "hierarchy": panel.hierarchy is not None,
        "backtest": backtest is not None,
        "errors_windows": errors.windows if errors is not None else None,
        "lightgbm": forecaster.ml_ is not None,
        "extended": [str(i) for i in panel.extended],
        "discontinued": [str(i) for i in panel.discontinued],
        "short": [str(i) for i in forecaster.short_],
        "timings": {k: float(v) for k, v in forecaster.timings_.items()},
    }
    (folder / STATE_FILE).write_text(json.dumps(meta, indent=1))
    return folder


def load_state(folder: str | Path):
    """The forecaster :func:`save_state` wrote into ``folder``, ready to ``predict``."""
    from . import engine
    from .bias import BiasFactors
    from .engine import BacktestResult
    from .forecaster import Forecaster
    from .intervals import ErrorProfile

    folder = Path(folder)
    meta = json.loads((folder / STATE_FILE).read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{folder}: model state format {meta.get('format')!r}; this version reads {FORMAT}.")
    frames = meta["frames"]

    def get(name: str):
        return _read(folder / f"{name}.parquet", frames[name]) if name in frames else None

    config = ForecastConfig.model_validate_json((folder / "config.json").read_text())
    Y = get("history")
    if meta["hierarchy"]:
        structure = Hierarchy.from_folder(folder / "hierarchy")
        tags = {name: structure.ids_of(name) for name in structure.level_names}
        panel = Panel(
            Y, get("bottom"), structure, tags, get("weights"), meta["extended"], meta["discontinued"]
        )
    else:
        panel = Panel(Y, Y, extended=meta["extended"], discontinued=meta["discontinued"])
    forecaster = Forecaster(config)
    backtest = None
    if meta["backtest"]:
        summary = get("summary")
        backtest = BacktestResult(
            cv=pd.DataFrame(), scores=pd.DataFrame(), summary=summary, chosen_cv=get("chosen_cv")
        )
    errors = None
    if meta["errors_windows"] is not None:
        errors = ErrorProfile(
            get("errors_scale"),
            get("errors_growth"),
            get("errors_quantile"),
            get("errors_demand_ratio"),
            int(meta["errors_windows"]),
        )
    ml = _load_ml(folder / _ML, Y, engine.ml_settings(Y, config)) if meta["lightgbm"] else None
    forecaster.panel_, forecaster.classes_, forecaster.backtest_ = panel, get("classes"), backtest
    forecaster.selection_, forecaster.stats_wide_ = get("selection"), get("stats_wide")
    forecaster.short_ = list(meta["short"])
    forecaster.ml_, forecaster.accuracy_, forecaster.errors_ = ml, get("accuracy"), errors
    forecaster.delivered_backtest_ = None
    forecaster.bias_ = BiasFactors(get("bias")) if "bias" in frames else None
    forecaster.timings_ = dict(meta["timings"])
    return forecaster


# -- LightGBM --------------------------------------------------------------------------------
def _save_ml(fitted, folder: Path) -> None:
    from .ml import ALIAS

    folder.mkdir(parents=True, exist_ok=True)
    fitted.models_[ALIAS].booster_.save_model(str(folder / "booster.txt"))
    pd.DataFrame({"unique_id": pd.Index(fitted.ts.uids).astype(str)}).to_parquet(
        folder / "series.parquet", index=False
    )


def _load_ml(folder: Path, Y: pd.DataFrame, settings):
    """mlforecast's fitted forecaster: its series state rebuilt from the history it was fitted
    on (``preprocess`` computes the target scaling and the last values, trains nothing), the
    stored booster as its model."""
    import lightgbm as lgb

    from .ml import ALIAS, ml_frame

    uids = pd.read_parquet(folder / "series.parquet")["unique_id"]
    # the frame ml_fit gave mlforecast: statics as categories (of every series), the lagged
    # flags, the series fitted
    frame = ml_frame(Y, settings)
    frame = frame[frame["unique_id"].isin(set(uids))]
    fitted = settings.build()
    fitted._cs_df = None  # no conformal intervals in mlforecast: ours come from the backtest
    fitted._cs_source_scales_ = None
    fitted.preprocess(frame, static_features=settings.statics, return_X_y=True)
    fitted.models_ = {ALIAS: _Booster(lgb.Booster(model_file=str(folder / "booster.txt")))}
    return fitted


# -- frames ----------------------------------------------------------------------------------
def _write(value: pd.DataFrame | pd.Series, path: Path) -> dict:
    """Write a frame or series as Parquet; return what :func:`_read` needs to restore its
    labels (non-text column labels, the series name, tuple cells)."""
    series = isinstance(value, pd.Series)
    frame = value.to_frame("value") if series else value
    tuples = [
        c
        for c in frame.columns
        if frame[c].dtype == object and len(frame) and isinstance(frame[c].iloc[0], tuple)
    ]
    columns = [_label(c) for c in frame.columns]
    out = frame.copy(deep=False)
    out.columns = [str(c) for c in frame.columns]
    out.to_parquet(path, index=True)
    return {
        "series": series,
        "name": _label(value.name) if series else None,
        "columns": columns,
        "columns_name": _label(frame.columns.name),
        "tuples": [str(c) for c in tuples],
    }


def _read(path: Path, how: dict) -> pd.DataFrame | pd.Series:
    frame = pd.read_parquet(path)
    for col in how["tuples"]:
        frame[col] = [tuple(v) for v in frame[col]]
    frame.columns = pd.Index(how["columns"], name=how["columns_name"])
    if how["series"]:
        return frame["value"].rename(how["name"])
    return frame


def _label(value):
    """A label JSON keeps as it was (numpy numbers as Python ones)."""
    return value.item() if isinstance(value, np.generic) else value

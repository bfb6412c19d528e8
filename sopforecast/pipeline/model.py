"""The fitted forecaster as an MLflow pyfunc model.

The pipeline logs the fitted :class:`~sopforecast.forecasting.forecaster.Forecaster` as the
folder artifact ``forecaster`` of plain files, no pickle (:mod:`sopforecast.forecasting.state`:
history and stored forecasts as Parquet, the hierarchy's sparse summing matrix as CSR arrays,
LightGBM in its native text form). Models registered before it hold ``forecaster.pkl``, which
still loads. ``predict`` never re-fits: it combines the stored forecasts with the drivers
given, attaches intervals and reconciles.

Input, one of:

- a frame with one row and a ``horizon`` column: every series the model knows;
- ``unique_id`` (or the key columns) and ``horizon``: those series only;
- the future drivers (``unique_id`` or the key columns, ``ds``, the drivers), whose dates
  set the horizon: those series only. Series not in the input keep their last driver
  values (they still shape the aggregates).

A series the model does not know (misspelt, or launched after the training history) is an
error naming it: the model cannot forecast it, and dropping it silently would hide a gap
in the plan. Aggregates of the series given are returned only when asked with the
parameter ``aggregates=True`` (``model.predict(frame, params={"aggregates": True})``, or
``"params": {"aggregates": true}`` in a request to ``mlflow models serve``).

Output: ``unique_id, ds, forecast, forecast-lo-80, ..., model`` (and ``level`` for
hierarchies), one row per series asked for and period.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

try:  # mlflow is a runtime dependency; the import guard keeps this module importable alone
    from mlflow.pyfunc import PythonModel
except ImportError:  # pragma: no cover
    PythonModel = object

from ..data.hierarchy import Hierarchy, key_columns
from ..errors import ConfigError, DataError, format_examples
from ..forecasting.drivers import series_ids
from ..forecasting.state import STATE_FILE, is_state, load_state, save_state

__all__ = [
    "ForecasterModel",
    "save_artifacts",
    "load_forecaster",
    "find_forecaster",
    "predict_with",
    "model_signature",
    "input_example",
    "ARTIFACT",
    "AGGREGATES",
]

ARTIFACT = "forecaster"
AGGREGATES = "aggregates"  # the predict parameter: also return the aggregates of the series given
_PICKLE = "forecaster.pkl"  # the artifact of models registered before the state folder


def save_artifacts(folder: Path, forecaster) -> dict[str, str]:
    """Write the fitted forecaster's state (the folder ``forecaster``) and its config into
    ``folder``; return MLflow's artifacts mapping."""
    folder.mkdir(parents=True, exist_ok=True)
    state = save_state(forecaster, folder / ARTIFACT)
    (folder / "config.json").write_text(forecaster.config.model_dump_json(indent=2))
    return {ARTIFACT: str(state), "config": str(folder / "config.json")}


def load_forecaster(path: str | Path):
    """The fitted forecaster at ``path``: a state folder (:func:`save_artifacts`), or the
    ``forecaster.pkl`` of a model registered by an earlier version."""
    path = Path(path)
    if path.is_dir():
        return load_state(path)
    with path.open("rb") as fh:
        forecaster = pickle.load(fh)  # noqa: S301 - our own artifact, from an earlier version
    # settings added since get their defaults (an unpickled config lacks them)
    config = forecaster.config
    forecaster.config = type(config).model_validate(
        {k: v for k, v in vars(config).items() if k in type(config).model_fields}
    )
    return _with_hierarchy(forecaster)


def _with_hierarchy(forecaster):
    """A forecaster pickled before the :class:`~sopforecast.data.hierarchy.Hierarchy` value
    holds a dense summing frame ``S`` in its panel; read as it is, its panel would have no
    hierarchy and ``predict`` would silently skip reconciliation. The hierarchy is built
    again from the panel's bottom series (the same ids and summing matrix)."""
    panel = getattr(forecaster, "panel_", None)
    state = vars(panel) if panel is not None else {}
    if "S" not in state or "hierarchy" in state:
        return forecaster
    dense = state.pop("S")
    structure = None
    if dense is not None:
        hierarchy = forecaster.config.hierarchy
        bottom = panel.bottom[["unique_id", *key_columns(hierarchy)]].sort_values("unique_id")
        structure = Hierarchy.from_bottom(bottom, hierarchy)
        if set(structure.ids) != set(dense["unique_id"].astype(str)):
            raise ConfigError(
                "this registered model was saved by an earlier sopforecast whose hierarchy ids differ "
                "from this version's; run its pipeline again to register a model this version reads."
            )
    panel.hierarchy = structure
    return forecaster


def find_forecaster(root: str | Path) -> Path | None:
    """Where under ``root`` (a downloaded model) the fitted forecaster is: its state folder,
    else an earlier version's ``forecaster.pkl``; None when neither is there."""
    root = Path(root)
    state = next((p.parent for p in sorted(root.rglob(STATE_FILE)) if is_state(p.parent)), None)
    return state if state is not None else next(root.rglob(_PICKLE), None)


def _keys(forecaster) -> list[str]:
    return key_columns(forecaster.config.hierarchy)


def model_signature(forecaster, output: pd.DataFrame):
    """Input and output schema for the registry: every input column optional (a horizon,
    the series, or the future drivers), and the ``aggregates`` parameter (default false)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    config = forecaster.config
    inputs = [
        ColSpec("long", "horizon", required=False),
        ColSpec("string", "unique_id", required=False),
        ColSpec("datetime", "ds", required=False),
    ]
    inputs += [ColSpec("string", k, required=False) for k in _keys(forecaster)]
    inputs += [ColSpec("double", d, required=False) for d in config.drivers]
    kinds = {"unique_id": "string", "ds": "datetime", "model": "string", "level": "string"}
    outputs = [ColSpec(kinds.get(c, "double"), c) for c in output.columns]
    params = ParamSchema([ParamSpec(AGGREGATES, "boolean", False)])
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs), params=params)


def input_example(forecaster, n_series: int = 2, periods: int = 3) -> tuple[pd.DataFrame, dict]:
    """A small request in the model's own terms, logged with it: the first ``n_series``
    bottom series and their last known drivers for ``periods`` months (or, without
    drivers, those series and a horizon), with the ``aggregates`` parameter."""
    config = forecaster.config
    bottom = forecaster.panel_.bottom
    ids = list(pd.unique(bottom["unique_id"]))[:n_series]
    if not config.drivers:
        return pd.DataFrame({"unique_id": ids, "horizon": periods}), {AGGREGATES: False}
    last = bottom[bottom["unique_id"].isin(ids)].sort_values("ds").groupby("unique_id").tail(1)
    offset = pd.tseries.frequencies.to_offset(config.freq)
    rows = [
        {
            "unique_id": row.unique_id,
            "ds": row.ds + k * offset,
            **{d: float(getattr(row, d)) for d in config.drivers},
        }
        for row in last.itertuples(index=False)
        for k in range(1, periods + 1)
    ]
    return pd.DataFrame(rows), {AGGREGATES: False}


@dataclass
class _Request:
    """What a pyfunc input asks for."""

    h: int | None = None
    future: pd.DataFrame | None = None
    ids: list[str] | None = None  # the series asked for; None: every series


def _request(model_input: pd.DataFrame | None, forecaster) -> _Request:
    """Horizon, future drivers and the series asked for, from the model input."""
    config = forecaster.config
    if model_input is None or len(model_input) == 0:
        return _Request()
    frame = model_input.dropna(axis=1, how="all")
    columns = set(frame.columns)
    keys = _keys(forecaster)
    if "unique_id" not in columns and keys and set(keys) <= columns:
        frame = frame.assign(unique_id=series_ids(frame, keys, "model input"))
    ids = None
    if "unique_id" in frame.columns:
        named = frame["unique_id"].dropna().astype(str)
        ids = list(pd.unique(named)) or None
        # ids are text: a served request may send 101 for "101"
        frame = frame.assign(
            unique_id=frame["unique_id"].where(frame["unique_id"].isna(), frame["unique_id"].astype(str))
        )
    h = None
    if "horizon" in columns:
        h = int(frame["horizon"].dropna().iloc[0])
        if h <= 0:
            raise ConfigError(f"horizon must be a positive number of periods, got {h}.", setting="horizon")
        if not [d for d in config.drivers if d in columns] or "ds" not in columns:
            return _Request(h, None, ids)
    if "ds" in columns:
        future = frame.drop(columns=["horizon"], errors="ignore")
        future = future.assign(ds=pd.to_datetime(future["ds"]))
        last = forecaster.panel_.Y["ds"].max()
        offset = pd.tseries.frequencies.to_offset(config.freq)
        steps = len(pd.date_range(last + offset, future["ds"].max(), freq=config.freq))
        return _Request(steps, future, ids)
    if ids is not None:
        return _Request(None, None, ids)
    raise ConfigError(
        "model input needs a 'horizon' column (one row), the series (unique_id or the key columns "
        f"{keys}) with a horizon, or future drivers with unique_id (or the key columns), ds and "
        f"the drivers {list(config.drivers)}; got columns {sorted(columns)}."
    )


def _check_known(ids: list[str], future: pd.DataFrame | None, forecaster) -> None:
    """Refuse series the model does not know, and driver values given for aggregates."""
    panel = forecaster.panel_
    known = set(panel.Y["unique_id"].astype(str))
    unknown = [i for i in ids if i not in known]
    if unknown:
        bottom = sorted(panel.bottom["unique_id"].astype(str).unique())
        sample = ", ".join(repr(i) for i in bottom[:3])
        above = f" and their {len(known) - len(bottom)} aggregates" if len(known) > len(bottom) else ""
        raise DataError(
            f"model input: {len(unknown)} series unknown to this model: {format_examples(unknown)}. "
            f"It forecasts the {len(bottom)} series of its training history (such as {sample}){above}, "
            "named by unique_id or the key columns. Check the spelling; a series launched after "
            "the training history needs a model trained on history that includes it (run the "
            "pipeline again): until then, remove it from the input.",
            setting="unique_id",
        )
    if future is None or panel.hierarchy is None or not forecaster.config.drivers:
        return
    drivers = [d for d in forecaster.config.drivers if d in future.columns]
    bottom = set(panel.bottom["unique_id"].astype(str))
    planned = future[future[drivers].notna().any(axis=1)] if drivers else future.iloc[0:0]
    upper = sorted(set(planned["unique_id"].astype(str)) - bottom)
    if upper:
        raise DataError(
            f"model input: driver values given for the aggregate(s) {format_examples(upper)}; the "
            f"drivers {drivers} are planned per bottom series (the aggregates' follow from them). "
            "Give them for the bottom series, or ask for an aggregate with unique_id and horizon only.",
            setting="unique_id",
        )


def _with_ancestors(ids: list[str], forecaster) -> set[str]:
    """``ids`` and every aggregate above one of them (whose bottom series include all of its)."""
    structure = forecaster.panel_.hierarchy
    if structure is None:
        return set(ids)
    S = structure.S.tocsc()
    position = pd.Index(structure.ids).get_indexer([str(i) for i in ids])
    keep = set(ids)
    for row in position:
        mine = structure.S[row].indices
        above = np.asarray(S[:, mine].sum(axis=1)).ravel() == len(mine)
        keep.update(structure.ids[above])
    return keep


def predict_with(forecaster, model_input: pd.DataFrame | None, *, aggregates: bool = False) -> pd.DataFrame:
    """Forecast with a fitted forecaster from a pyfunc input frame (usable without MLflow).

    Parameters
    ----------
    forecaster : Forecaster
        The fitted forecaster.
    model_input : pandas.DataFrame or None
        See the module docstring; ``None`` or empty: every series, the configured horizon.
    aggregates : bool, default False
        Also return every aggregate above the series asked for (for an input naming no
        series every series is returned anyway).

    Raises
    ------
    DataError
        When the input names a series the model does not know (listing them), or gives
        driver values for an aggregate.
    """
    request = _request(model_input, forecaster)
    if request.ids is not None:
        _check_known(request.ids, request.future, forecaster)
    if request.future is None:
        out = forecaster.predict(h=request.h).forecast
    else:
        # series without drivers in the input keep their last values
        out = forecaster.predict(h=request.h, future=request.future, fill="carry").forecast
    if request.ids is None:
        return out
    wanted = _with_ancestors(request.ids, forecaster) if aggregates else set(request.ids)
    return out[out["unique_id"].astype(str).isin(wanted)].reset_index(drop=True)


class ForecasterModel(PythonModel):
    """MLflow pyfunc wrapper of a pipeline's fitted forecaster (see the module docstring)."""

    def load_context(self, context) -> None:
        self.forecaster = load_forecaster(context.artifacts[ARTIFACT])

    # the type hints tell MLflow the input is a frame (checked against the logged signature)
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:  # noqa: ARG002
        wanted = (params or {}).get(AGGREGATES, False)
        if isinstance(wanted, str):  # a served request may send the flag as text
            wanted = wanted.strip().lower() in ("true", "1", "yes")
        return predict_with(self.forecaster, model_input, aggregates=bool(wanted))

"""sopforecast: demand forecasting for sales and operations planning (S&OP).

The public API is small; names load on first use so the command line starts fast.

>>> import sopforecast as sf
>>> history = sf.generate_demand(n_series=50, seed=0)
>>> validated = sf.validate(history, sf.DataConfig(hierarchy=["category/family/sku", "region/channel"]))
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "DataConfig": "sopforecast.config",
    "SopforecastError": "sopforecast.errors",
    "DataError": "sopforecast.errors",
    "ConfigError": "sopforecast.errors",
    "read_source": "sopforecast.data.io",
    "write_frame": "sopforecast.data.io",
    "validate": "sopforecast.data.schema",
    "ValidatedData": "sopforecast.data.schema",
    "classify_demand": "sopforecast.data.profile",
    "hierarchy_levels": "sopforecast.data.hierarchy",
    "generate_demand": "sopforecast.data.datasets",
    "load_pbs": "sopforecast.data.pbs",
    "load_m1": "sopforecast.data.competitions",
    "load_m3": "sopforecast.data.competitions",
    "load_tourism": "sopforecast.data.competitions",
    "ForecastConfig": "sopforecast.config",
    "Forecaster": "sopforecast.forecasting.forecaster",
    "forecast": "sopforecast.forecasting.api",
    "backtest": "sopforecast.forecasting.api",
    "PlanStore": "sopforecast.store.plans",
    "draft_lines": "sopforecast.planning.plan",
    "summing": "sopforecast.planning.lines",
    "validate_overrides": "sopforecast.planning.overrides",
    "apply_overrides": "sopforecast.planning.consensus",
    "apply_overrides_frame": "sopforecast.planning.workflow",
    "apply_override_file": "sopforecast.planning.workflow",
    "load_actuals_file": "sopforecast.planning.workflow",
    "export_version": "sopforecast.planning.workflow",
    "fva_report": "sopforecast.planning.workflow",
    "fva_table": "sopforecast.planning.fva",
    "revenue": "sopforecast.planning.finance",
    "prices_from_history": "sopforecast.planning.finance",
    "prices_from_cost": "sopforecast.planning.finance",
    "attach_prices": "sopforecast.planning.finance",
    "budget_gap": "sopforecast.planning.finance",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover
    from .config import DataConfig, ForecastConfig
    from .data.competitions import load_m1, load_m3, load_tourism
    from .data.datasets import generate_demand
    from .data.hierarchy import hierarchy_levels
    from .data.io import read_source, write_frame
    from .data.pbs import load_pbs
    from .data.profile import classify_demand
    from .data.schema import ValidatedData, validate
    from .errors import ConfigError, DataError, SopforecastError
    from .forecasting.api import backtest, forecast
    from .forecasting.forecaster import Forecaster
    from .planning.consensus import apply_overrides
    from .planning.finance import attach_prices, budget_gap, prices_from_cost, prices_from_history, revenue
    from .planning.fva import fva_table
    from .planning.lines import summing
    from .planning.overrides import validate_overrides
    from .planning.plan import draft_lines
    from .planning.workflow import (
        apply_override_file,
        apply_overrides_frame,
        export_version,
        fva_report,
        load_actuals_file,
    )
    from .store.plans import PlanStore


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sopforecast' has no attribute {name!r}")

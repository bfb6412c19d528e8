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


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sopforecast' has no attribute {name!r}")

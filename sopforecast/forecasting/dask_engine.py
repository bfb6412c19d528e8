"""The Dask engine (``forecast.engine: dask``): where the statistical models fit.

A :func:`session` connects to the scheduler at ``forecast.dask.address``, or starts a
``LocalCluster`` on 127.0.0.1 (worker processes started by spawn, one thread each, every
port on loopback) and closes it when the run ends. Inside a session the statistical models run
through statsforecast's Fugue backend: the history goes to the cluster as a Dask frame,
partitioned by series, and the forecasts come back to the client as a pandas frame typed as
the local engine's (:func:`collect`).

What runs where:

- statistical backtests and forecasts: on the workers, one partition of series each;
- LightGBM: on the client, with the local engine's code (see :mod:`.ml` for why);
- selection, combination, intervals and reconciliation: on the client, once every
  forecast is collected.

Client memory of reconciliation: it runs on the client once the forecasts are collected.
Up to ``forecast.reconcile_sparse_above`` series (4,000) it is hierarchicalforecast's dense
MinTrace, whose memory grows with the square of the series (measured at cdbe7b6: +0.22 GB at
2,132 series, +0.98 GB at 4,731, +3.7 GB at 9,159; ``mint_shrink`` on 10,022 series +6.5 GB).
Above it the summing matrix stays sparse and the diagonal MinTrace methods are solved
without a dense matrix (:mod:`.sparse_wls`): +0.08 GB and 1.4 s for 16,250 series (10k
bottom series of the demo hierarchy, 6 months ahead), growing linearly with the series:
about 0.05 GB per 10k series for the solve, on top of the collected forecasts themselves
(series x horizon x the candidates' columns, about 0.1 GB per 10k series for 36 months).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import ConfigError

__all__ = ["DaskSession", "session", "engine_session", "active", "scatter", "collect", "require"]

logger = logging.getLogger(__name__)

_CONNECT_SECONDS = 20
_ACTIVE: contextvars.ContextVar[DaskSession | None] = contextvars.ContextVar("dask_session", default=None)


@dataclass
class DaskSession:
    """The client of a run, where it is connected, and what was already said about it."""

    client: object
    address: str
    n_workers: int
    said: set[str] = field(default_factory=set)

    def note_once(self, key: str, message: str, *args) -> None:
        """Log ``message`` at INFO level the first time ``key`` is seen in this session."""
        if key not in self.said:
            self.said.add(key)
            logger.info(message, *args)


def require() -> None:
    """Raise :class:`ConfigError` with the install hint when dask or distributed is missing."""
    try:
        import dask.dataframe  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"engine 'dask' needs dask and distributed ({exc.name} is not installed): "
            "pip install 'sopforecast[dask]', or set forecast.engine to local.",
            setting="engine",
        ) from exc


def active() -> DaskSession | None:
    """The session this run is inside, if any."""
    return _ACTIVE.get()


@contextmanager
def session(address: str | None = None, n_workers: int = 2) -> Iterator[DaskSession]:
    """A Dask client for the duration of the ``with`` block.

    Parameters
    ----------
    address : str, optional
        Scheduler of an existing cluster (``tcp://10.0.0.5:8786``); default none: start a
        ``LocalCluster`` on 127.0.0.1 and close it at the end.
    n_workers : int, default 2
        Worker processes of the ``LocalCluster`` (one thread each).

    Inside an active session, yields that session (one cluster per run).
    """
    current = _ACTIVE.get()
    if current is not None:
        yield current
        return
    require()
    import dask
    from distributed import Client, LocalCluster

    cluster = None
    # a LocalCluster's scheduler runs in this process and logs every shuffle of the Fugue
    # backend at WARNING level ("Shuffle ... initialized by task"): nothing a planner can act on
    shuffle_log = logging.getLogger("distributed.shuffle._scheduler_plugin")
    shuffle_level = shuffle_log.level
    # workers start by spawn: nothing relies on state inherited from a forked client
    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}):
        if address:
            try:
                client = Client(address, set_as_default=True, timeout=_CONNECT_SECONDS)
            except OSError as exc:
                raise ConfigError(
                    f"no Dask scheduler answered at {address} within {_CONNECT_SECONDS} s ({exc}); "
                    "start the cluster, correct forecast.dask.address, or leave it empty for a "
                    "LocalCluster on this machine.",
                    setting="dask",
                ) from exc
            logger.info(
                "Connected to the Dask scheduler at %s (%d workers)",
                address,
                len(client.scheduler_info()["workers"]),
            )
        else:
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                # the scheduler's HTTP endpoints (the dashboard, if bokeh is installed) on a
                # free loopback port: None would take 8787, ":0" would listen on every interface
                dashboard_address="127.0.0.1:0",
            )
            try:
                client = Client(cluster, set_as_default=True)
                client.register_plugin(_quiet_workers(), name="sopforecast-quiet-workers")
            except BaseException:
                cluster.close()  # never leave worker processes behind
                raise
            shuffle_log.setLevel(logging.ERROR)
            logger.info(
                "Started a Dask LocalCluster at %s with %d workers (1 thread each)",
                cluster.scheduler_address,
                n_workers,
            )
    workers = len(client.scheduler_info()["workers"])
    run = DaskSession(client, address or cluster.scheduler_address, workers)
    token = _ACTIVE.set(run)
    try:
        yield run
    finally:
        _ACTIVE.reset(token)
        client.close()
        if cluster is not None:
            cluster.close()
            shuffle_log.setLevel(shuffle_level)
            logger.info("Closed the Dask LocalCluster at %s", run.address)
        else:
            logger.info("Disconnected from the Dask scheduler at %s", run.address)


# what dask's own code makes pandas say in every worker, on every shuffle, that a planner
# can do nothing about
_WORKER_NOISE = "DataFrameGroupBy.apply operated on the grouping columns"


def _quiet_workers():
    """A worker plugin that ignores :data:`_WORKER_NOISE` (only on clusters we start)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class QuietWorkers(WorkerPlugin):
        def setup(self, worker) -> None:
            import warnings

            warnings.filterwarnings("ignore", message=_WORKER_NOISE, category=FutureWarning)

    return QuietWorkers()


@contextmanager
def engine_session(config) -> Iterator[DaskSession | None]:
    """:func:`session` for a :class:`~sopforecast.config.ForecastConfig` whose engine is
    ``dask``; nothing for the local engine."""
    if config.engine != "dask":
        yield None
        return
    with session(config.dask.address, config.dask.n_workers) as run:
        yield run


def scatter(df: pd.DataFrame, run: DaskSession):
    """``df`` as a Dask frame of about two partitions per worker, rows of a series together."""
    import dask.dataframe as dd

    n_series = df["unique_id"].nunique()
    parts = int(max(1, min(n_series, 2 * run.n_workers)))
    # whole series per partition: statsforecast's backend repartitions by id anyway
    codes = pd.factorize(df["unique_id"], sort=True)[0] % parts
    ordered = df.iloc[np.argsort(codes, kind="stable")].reset_index(drop=True)
    return dd.from_pandas(ordered, npartitions=parts, sort=False)


def collect(result, like: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """A distributed statsforecast result as the local engine returns it.

    The Fugue backend types ids and dates as Arrow and every number as float32: ids come
    back as Python strings (object), dates as ``datetime64[ns]``, forecasts as float64 and
    ``y`` as the history's own values (not their float32 rounding); rows sorted by ``keys``.
    """
    out = result.compute() if hasattr(result, "compute") else result
    out = pd.DataFrame(out).reset_index(drop=True)
    out["unique_id"] = out["unique_id"].astype(str).astype(object)
    for col in ("ds", "cutoff"):
        if col in out:
            out[col] = pd.to_datetime(out[col]).astype("datetime64[ns]")
    numbers = [c for c in out.columns if c not in ("unique_id", "ds", "cutoff")]
    out[numbers] = out[numbers].astype("float64")
    if "y" in out:
        history = like[["unique_id", "ds", "y"]].set_index(["unique_id", "ds"])["y"]
        out["y"] = history.reindex(pd.MultiIndex.from_frame(out[["unique_id", "ds"]])).to_numpy()
        front = ["unique_id", "ds", "cutoff", "y"]
        out = out[[*front, *[c for c in out.columns if c not in front]]]
    return out.sort_values(keys, kind="stable").reset_index(drop=True)

"""Where runs are tracked: the default offline store in the work directory, or a server.

With no configuration, tracking and the model registry use a SQLite database and an
artifact folder under ``<workdir>/mlflow/``: offline, no server. A remote ``http(s)://``
server or a ``postgresql://`` backend is checked for reachability before a run starts.

Everything here talks to MLflow through the :class:`~mlflow.MlflowClient` of a
:class:`Store` (``store.client()``), never through MLflow's process-wide tracking URI.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..data.io import redact_url
from ..errors import ConfigError
from ..workdir import NoStoreError, Workdir

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["Store", "resolve_store", "check_reachable", "get_experiment_id", "log_batch", "metric_list"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Store:
    """A tracking URI, a registry URI and, for local stores, the artifact folder."""

    tracking_uri: str
    registry_uri: str
    artifact_root: Path | None

    def client(self) -> MlflowClient:
        """An :class:`mlflow.MlflowClient` on this store's tracking and registry URIs."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    def activate(self) -> None:
        """Point MLflow's fluent API (``mlflow.search_runs``, ``mlflow.pyfunc.load_model``)
        at this store, for notebooks and scripts. Process-wide; the package itself uses
        :meth:`client` instead."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.registry_uri)


def default_tracking_uri(workdir: Workdir) -> str:
    return f"sqlite:///{workdir.mlflow_db}"


def resolve_store(
    workdir: Workdir,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    *,
    create: bool = True,
) -> Store:
    """The configured store, else the SQLite store in ``<workdir>/mlflow``.

    Parameters
    ----------
    workdir : Workdir
        The work directory, home of the local store.
    tracking_uri, registry_uri : str, optional
        A configured store; default the local one (registry: the tracking URI).
    create : bool, default True
        Create the local store's folder. False for commands that only read: a missing
        local (SQLite) store is then a :class:`~sopforecast.workdir.NoStoreError` instead
        of a new empty store.
    """
    if tracking_uri is None:
        if create:
            workdir.ensure(workdir.mlflow)
        else:
            workdir.require(workdir.mlflow_db)
        uri = default_tracking_uri(workdir)
        return Store(uri, registry_uri or uri, workdir.mlflow / "artifacts")
    root = None
    if tracking_uri.startswith(("sqlite:", "postgresql", "mysql")):
        if create:
            workdir.ensure(workdir.mlflow)
        elif tracking_uri.startswith("sqlite:"):
            _require_sqlite(tracking_uri)
        root = workdir.mlflow / "artifacts"
    return Store(tracking_uri, registry_uri or tracking_uri, root)


def _require_sqlite(uri: str) -> None:
    """Refuse a SQLite tracking URI whose file is missing (opening it would create it)."""
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    if database and database != ":memory:" and not Path(database).is_file():
        raise NoStoreError(
            f"no MLflow store at {database} (tracking URI {uri}); run a pipeline with that "
            "tracking URI first, or fix the URI.",
            setting="tracking_uri",
        )


def check_reachable(store: Store, timeout: float = 5.0) -> None:
    """Fail fast, with a clear message, when the tracking server or database is unreachable."""
    uri = store.tracking_uri
    if uri.startswith(("http://", "https://")):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout):  # noqa: S310 - the user's tracking server
                return
        except urllib.error.HTTPError:
            return  # the server answered; MLflow reports any real problem itself
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise ConfigError(
                f"cannot reach the MLflow tracking server at {uri} ({getattr(exc, 'reason', exc)}). "
                "Start it (see mlflow/README.md), fix tracking.tracking_uri, or leave it empty "
                "for the local store."
            ) from exc
    elif uri.startswith(("postgresql", "mysql")):
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import SQLAlchemyError

        try:
            engine = create_engine(uri, connect_args={"connect_timeout": int(timeout)})
            with engine.connect() as conn:
                conn.execute(text("select 1"))
            engine.dispose()
        except (SQLAlchemyError, ImportError) as exc:
            raise ConfigError(
                f"cannot connect to the tracking database {redact_url(uri)}: {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0]}. Check that it runs and the URL is right "
                "(pip install 'sopforecast[postgres]' for PostgreSQL)."
            ) from exc
    elif not uri.startswith(("sqlite:", "file:", "databricks")) and "://" in uri:
        raise ConfigError(
            f"tracking URI {uri!r} is not one sopforecast knows: use http(s)://, postgresql://, "
            "sqlite:/// or leave it empty."
        )


def get_experiment_id(client: MlflowClient, name: str, artifact_root: Path | None = None) -> str:
    """The experiment's id, created when missing (with its artifacts under
    ``artifact_root`` when given, as for the local store).

    Parameters
    ----------
    client : mlflow.MlflowClient
        The store's client (:meth:`Store.client`).
    name : str
        The pipeline's ``tracking.experiment``.
    artifact_root : Path, optional
        Artifact folder of a local store; default the server's.
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            raise ConfigError(
                f"experiment {name!r} was deleted in MLflow; restore it or set tracking.experiment.",
                setting="tracking.experiment",
            )
        return experiment.experiment_id
    location = None
    if artifact_root is not None:
        artifact_root.mkdir(parents=True, exist_ok=True)
        location = artifact_root.as_uri()
    logger.info("Creating MLflow experiment %s", name)
    return client.create_experiment(name, artifact_location=location)


def metric_list(values: dict[str, float], step: int = 0) -> list:
    """MLflow metrics of ``values``, all at ``step``, stamped now."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(key, float(value), now, step) for key, value in values.items()]


def log_batch(
    client: MlflowClient,
    run_id: str,
    *,
    metrics: list | None = None,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    """Log metrics, and params and tags given as dicts, in one ``MlflowClient.log_batch``
    call; MLflow splits it into requests within its limits (1,000 metrics, 100 params or
    tags per request) itself."""
    from mlflow.entities import Param, RunTag

    client.log_batch(
        run_id,
        metrics=metrics or [],
        params=[Param(k, str(v)) for k, v in (params or {}).items()],
        tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
    )

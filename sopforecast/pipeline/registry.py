"""Champion and challenger in the MLflow model registry.

Every registered version first becomes the ``challenger``. It takes the ``champion`` alias
only when its backtest error beats the champion's on the same data by the configured
margin (or when forced). "The same data": when the champion was trained on other data, it
is re-scored on this run's data before the comparison.

Every function takes the store's :class:`mlflow.MlflowClient` (``Store.client()``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "Decision",
    "check_name",
    "register_and_decide",
    "promote",
    "load_champion",
    "PIPELINE_TAG",
    "CHAMPION",
]

logger = logging.getLogger(__name__)

PIPELINE_TAG = "sopforecast.pipeline"
CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass
class Decision:
    """What the registry did with a new version."""

    name: str
    version: str
    promoted: bool
    reason: str
    metric: str
    challenger_value: float
    champion_value: float | None = None
    previous_champion: str | None = None


def check_name(client: MlflowClient, name: str, pipeline: str) -> None:
    """Refuse a registered model that belongs to another pipeline (a name clash)."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException:
        return
    owner = model.tags.get(PIPELINE_TAG)
    if owner != pipeline:
        raise ConfigError(
            f"registered model {name!r} already exists and belongs to "
            f"{'pipeline ' + repr(owner) if owner else 'something other than sopforecast'}; "
            "set tracking.registered_model to another name.",
            setting="tracking.registered_model",
        )


def _champion(client: MlflowClient, name: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def register_and_decide(
    client: MlflowClient,
    *,
    name: str,
    pipeline: str,
    source: str,
    run_id: str,
    metric: str,
    value: float,
    data_fingerprint: str,
    margin: float,
    force: bool,
    rescore: Callable[[str], float],
) -> Decision:
    """Register the model at ``source`` as a new version of ``name``, alias it
    ``challenger`` and decide.

    The decision says whether the version should become champion; :func:`promote` carries
    it out once the run has nothing left that can fail.

    Parameters
    ----------
    client : mlflow.MlflowClient
        The store's client.
    source : str
        Artifact URI of the logged pyfunc model (``<run artifact uri>/forecaster``).
    run_id : str
        The run that logged it.
    rescore : callable
        Given a champion version, its ``metric`` on this run's data (used when the champion
        was trained on other data).
    """
    from mlflow.exceptions import MlflowException

    check_name(client, name, pipeline)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name,
            tags={PIPELINE_TAG: pipeline},
            description=f"Demand forecaster of the sopforecast pipeline {pipeline}.",
        )
    tags = {
        PIPELINE_TAG: pipeline,
        "metric": metric,
        metric: repr(float(value)),
        "data_fingerprint": data_fingerprint,
        "run_id": run_id,
    }
    version = client.create_model_version(name, source=source, run_id=run_id, tags=tags).version
    champion = _champion(client, name)
    client.set_registered_model_alias(name, CHALLENGER, version)
    decision = Decision(name, str(version), False, "", metric, value)
    if champion is None:
        decision.promoted, decision.reason = True, "first version"
    else:
        decision.previous_champion = str(champion.version)
        same_data = champion.tags.get("data_fingerprint") == data_fingerprint
        if same_data and metric in champion.tags:
            decision.champion_value = float(champion.tags[metric])
        else:
            logger.info(
                "Champion v%s was trained on other data; re-scoring it on this data", champion.version
            )
            decision.champion_value = float(rescore(str(champion.version)))
        bar = decision.champion_value * (1.0 - margin)
        if force:
            decision.promoted, decision.reason = True, "forced (promote)"
        elif value < bar:
            decision.promoted = True
            decision.reason = (
                f"{metric} {value:.4g} beats champion's {decision.champion_value:.4g} by > {margin:.0%}"
            )
        else:
            decision.reason = (
                f"{metric} {value:.4g} does not beat champion v{champion.version}'s "
                f"{decision.champion_value:.4g} by the margin {margin:.0%}"
            )
    logger.info(
        "Registered %s v%s as %s: %s",
        name,
        version,
        "the next champion" if decision.promoted else CHALLENGER,
        decision.reason,
    )
    return decision


def promote(client: MlflowClient, decision: Decision) -> None:
    """Give a promoted version the ``champion`` alias (the run's last step, after its outputs)."""
    from mlflow.exceptions import MlflowException

    if not decision.promoted:
        return
    client.set_registered_model_alias(decision.name, CHAMPION, decision.version)
    try:
        client.delete_registered_model_alias(decision.name, CHALLENGER)
    except MlflowException:  # no challenger alias left to remove
        pass
    logger.info("%s v%s is the champion", decision.name, decision.version)


def load_champion(client: MlflowClient, name: str, *, tracking_uri: str, where: str = ""):
    """The fitted forecaster of ``name``'s champion and its model version: what a scenario
    re-forecasts with (``predict(future=...)``, no re-fit).

    Raises
    ------
    ConfigError
        The model has no champion, or its artifact holds no fitted forecaster.
    """
    import os
    import tempfile

    import mlflow

    from .model import find_forecaster, load_forecaster

    model = _champion(client, name)
    if model is None:
        raise ConfigError(
            f"no champion of the registered model {name!r}{f' in {where}' if where else ''}: a "
            "promotion re-forecasts with the fitted champion. Name the pipeline that made the plan, "
            "or run it with its model registered.",
            setting="pipeline",
        )
    source = client.get_model_version_download_uri(name, model.version)
    bar = os.environ.get(_DOWNLOAD_BAR)
    os.environ[_DOWNLOAD_BAR] = "false"  # MLflow's progress bar: noise on a planner's terminal
    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=tmp, tracking_uri=tracking_uri
            )
            found = find_forecaster(local)
            if found is None:
                raise ConfigError(
                    f"champion v{model.version} of {name!r} holds no fitted forecaster (a forecaster "
                    "state folder or forecaster.pkl)."
                )
            return load_forecaster(found), model
    finally:
        if bar is None:
            os.environ.pop(_DOWNLOAD_BAR, None)
        else:
            os.environ[_DOWNLOAD_BAR] = bar


_DOWNLOAD_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"

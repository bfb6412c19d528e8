"""Champion and challenger in the MLflow model registry.

Every registered version first becomes the ``challenger``. It takes the ``champion`` alias
only when its backtest error beats the champion's on the same data by the configured
margin (or when forced). "The same data": when the champion was trained on other data, it
is re-scored on this run's data before the comparison.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["Decision", "check_name", "register_and_decide", "promote", "PIPELINE_TAG"]

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


def _client():
    from mlflow import MlflowClient

    return MlflowClient()


def check_name(name: str, pipeline: str) -> None:
    """Refuse a registered model that belongs to another pipeline (a name clash)."""
    from mlflow.exceptions import MlflowException

    try:
        model = _client().get_registered_model(name)
    except MlflowException:
        return
    owner = model.tags.get(PIPELINE_TAG)
    if owner != pipeline:
        raise ConfigError(
            f"registered model {name!r} already exists and belongs to "
            f"{'pipeline ' + repr(owner) if owner else 'something other than sopforecast'}; "
            "set tracking.registered_model to another name."
        )


def _champion(name: str):
    from mlflow.exceptions import MlflowException

    try:
        return _client().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def register_and_decide(
    *,
    name: str,
    pipeline: str,
    model_uri: str,
    run_id: str,
    metric: str,
    value: float,
    data_fingerprint: str,
    margin: float,
    force: bool,
    rescore: Callable[[str], float],
) -> Decision:
    """Register ``model_uri`` as a new version of ``name``, alias it ``challenger`` and decide.

    The decision says whether the version should become champion; :func:`promote` carries
    it out once the run has nothing left that can fail.

    Parameters
    ----------
    rescore : callable
        Given a champion version, its ``metric`` on this run's data (used when the champion
        was trained on other data).
    """
    from mlflow.exceptions import MlflowException

    import mlflow

    client = _client()
    check_name(name, pipeline)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name,
            tags={PIPELINE_TAG: pipeline},
            description=f"Demand forecaster of the sopforecast pipeline {pipeline}.",
        )
    version = mlflow.register_model(model_uri, name, tags={PIPELINE_TAG: pipeline}).version
    for key, val in {
        "metric": metric,
        metric: repr(float(value)),
        "data_fingerprint": data_fingerprint,
    }.items():
        client.set_model_version_tag(name, version, key, val)
    client.set_model_version_tag(name, version, "run_id", run_id)
    champion = _champion(name)
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
            decision.promoted, decision.reason = True, "forced with --promote"
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


def promote(decision: Decision) -> None:
    """Give a promoted version the ``champion`` alias (the run's last step, after its outputs)."""
    from mlflow.exceptions import MlflowException

    if not decision.promoted:
        return
    client = _client()
    client.set_registered_model_alias(decision.name, CHAMPION, decision.version)
    try:
        client.delete_registered_model_alias(decision.name, CHALLENGER)
    except MlflowException:
        pass
    logger.info("%s v%s is the champion", decision.name, decision.version)

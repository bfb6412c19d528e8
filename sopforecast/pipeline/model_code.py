"""Model-from-code entry point MLflow stores with a logged forecaster (no pickled objects)."""

import mlflow
from sopforecast.pipeline.model import ForecasterModel

mlflow.models.set_model(ForecasterModel())

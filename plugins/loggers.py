"""Built-in loggers: ``tensorboard`` (TensorBoard event files) and ``mlflow`` (an MLflow tracking
store). Each runs only when a run asks for it (``--log NAME[=URI]``); their packages are optional
(``harness[tensorboard]``, ``harness[mlflow]``) and imported only then."""

from __future__ import annotations

from harness import hookimpl


def tensorboard_logger(uri: str | None):
    """Event files in ``URI/<run_id>`` (default: ``RESULTS/tensorboard/<run_id>``)."""
    from harness.plugins.tensorboard_logger import TensorBoardLogger

    return TensorBoardLogger(uri)


def mlflow_logger(uri: str | None):
    """An MLflow run per harness run, in the tracking store at ``URI`` (default: MLflow's own)."""
    from harness.plugins.mlflow_logger import MlflowLogger

    return MlflowLogger(uri)


@hookimpl
def register_loggers(register):
    register("tensorboard", tensorboard_logger, engine="tensorboard", extra="tensorboard")
    register("mlflow", mlflow_logger, engine="mlflow", extra="mlflow")

"""The ``mlflow`` logger: an MLflow run per harness run, in an experiment named after the sweep
(``harness`` outside a sweep), in the tracking store at ``URI`` of ``--log mlflow=URI`` (else MLflow's
own default: ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the working folder).

The MLflow run is named after the run id and tagged ``harness.run_id``; its parameters are the run's
configuration (options left unset, such as ``train_size`` for all examples, are absent), its metrics
every epoch's losses, top-1 and top-5 accuracies and learning rate (step: the epoch), and at the end the ``runs`` row's
totals (``epochs``, ``steps``, ``fit_epoch``, ``fit_step``, ``best_test_acc``, ``best_test_top5``, ``param_count``,
``wall_seconds``). It ends with the tag ``harness.status`` and MLflow status FINISHED (completed),
KILLED (interrupted) or FAILED. A run resumed from a checkpoint continues the MLflow run of its
interrupted attempt.

A tracking server that cannot be reached (no connection within 5 s) makes the logger raise at once:
the run goes on without it. A server that answers with errors is retried as MLflow says
(``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``MLFLOW_HTTP_REQUEST_TIMEOUT``).
"""

from __future__ import annotations

import socket
import time
from dataclasses import asdict
from urllib.parse import urlsplit

from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException

from harness import hookimpl
from harness.config import RunConfig

EPOCH_METRICS = (
    "train_loss",
    "train_acc",
    "train_top5",
    "test_loss",
    "test_acc",
    "test_top5",
    "holdout_loss",
    "holdout_acc",
    "holdout_top5",
    "lr",
)
"""``epochs`` columns logged as metrics every epoch."""
FINAL_METRICS = (
    "epochs",
    "steps",
    "fit_epoch",
    "fit_step",
    "best_test_acc",
    "best_test_top5",
    "param_count",
    "wall_seconds",
)
"""``runs`` columns logged as metrics at the end."""
CONNECT_SECONDS = 5.0
"""How long to wait for a tracking server's connection before giving up on it."""
MAX_TAG_LENGTH = 5000
"""Tag values are cut to this many characters (MLflow refuses longer ones)."""
STATUS = {"completed": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}
"""Run status -> MLflow run status."""


def config_params(config: RunConfig) -> dict[str, str]:
    """The configuration as MLflow parameters, named as the ``runs`` columns; unset options left out."""
    fields = asdict(config)
    fields["regularizers"] = ",".join(config.regularizers) or "none"
    return {name: str(value) for name, value in fields.items() if value is not None}


def check_reachable(uri: str | None) -> None:
    """Raise ConnectionError when ``uri`` is an HTTP(S) tracking server that takes no connection,
    before MLflow's retries would wait minutes for it."""
    parts = urlsplit(uri or "")
    if parts.scheme not in ("http", "https"):
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=CONNECT_SECONDS).close()
    except OSError as error:
        raise ConnectionError(f"tracking server {uri} cannot be reached: {error}") from None


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of the experiment ``name``, created when missing (another worker may create it meanwhile)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


class MlflowLogger:
    """Logs one run to the tracking store at ``uri`` (None: MLflow's default)."""

    def __init__(self, uri: str | None):
        self.client = MlflowClient(tracking_uri=uri)
        self.mlflow_run_id: str | None = None

    @hookimpl
    def run_started(self, run_id: str, config: RunConfig, resumed_from_epoch: int, sweep: str | None) -> None:
        check_reachable(self.client.tracking_uri)
        experiment = experiment_id(self.client, sweep or "harness")
        earlier = (
            self.client.search_runs(
                [experiment],
                filter_string=f"tags.`harness.run_id` = '{run_id}'",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            if resumed_from_epoch
            else []
        )
        if earlier:
            self.mlflow_run_id = earlier[0].info.run_id
            self.client.update_run(self.mlflow_run_id, status="RUNNING")
            return
        run = self.client.create_run(
            experiment, run_name=run_id, tags={"harness.run_id": run_id, "harness.status": "running"}
        )
        self.mlflow_run_id = run.info.run_id
        self.client.log_batch(self.mlflow_run_id, params=[Param(k, v) for k, v in config_params(config).items()])

    @hookimpl
    def epoch_finished(self, row: dict) -> None:
        self.log_metrics(row, EPOCH_METRICS, row["epoch"])

    @hookimpl
    def run_finished(self, row: dict) -> None:
        self.log_metrics(row, FINAL_METRICS, row["epochs"])
        self.client.set_tag(self.mlflow_run_id, "harness.status", row["status"])
        if row["error"]:
            self.client.set_tag(self.mlflow_run_id, "harness.error", row["error"][:MAX_TAG_LENGTH])
        self.client.set_terminated(self.mlflow_run_id, STATUS[row["status"]])

    def log_metrics(self, row: dict, columns: tuple[str, ...], step: int) -> None:
        now = int(time.time() * 1000)
        metrics = [Metric(column, float(row[column]), now, step) for column in columns if row[column] is not None]
        self.client.log_batch(self.mlflow_run_id, metrics=metrics)

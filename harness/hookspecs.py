"""Hook specifications: every model, dataset, corruption, regularizer, feature map, sweep executor,
logger and extra CLI command, built-in or third-party, is registered through these hooks.

A plugin implements a hook with ``@harness.hookimpl`` on a function of the same name. Each
``register_*`` hook is called once, with one argument, ``register``: a callable
``register(name: str, obj, **info) -> None`` that adds ``obj`` under ``name``. A name taken twice is
an error naming both plugins; built-in names are never overridden. Implementing a hook that is
not listed here (a typo such as ``register_model``) makes the plugin fail to load.

The run-event hooks of :class:`RunEvents` are implemented by loggers, the objects a
``register_loggers`` factory returns, not by plugin modules: a logger observes the runs it is
asked for (``--log NAME``), never every run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # for the documentation only: the core never imports Typer
    import typer

    from harness.config import RunConfig

Register = Callable[..., None]
"""``register(name: str, obj, **info) -> None``: adds ``obj`` under ``name``."""

hookspec = pluggy.HookspecMarker("harness")


@hookspec
def register_models(register: Register) -> None:
    """Register model factories.

    Parameters
    ----------
    register : callable
        ``register(name: str, factory, default_lr: float | None = None)``, where
        ``factory(input_shape: tuple[int, int, int], num_classes: int, **options) -> torch.nn.Module``
        builds an untrained model for (C, H, W) inputs. ``options`` are the ones regularizers may
        pass (for example ``dropout: float``); a factory that does not take one makes that
        regularizer a clear error. ``default_lr`` is the model's initial learning rate when the
        user sets none (0.01 otherwise).
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register data sets.

    Parameters
    ----------
    register : callable
        ``register(name: str, loader)``, where
        ``loader(root: pathlib.Path, download: bool) -> harness.data.ImageDataset`` loads the
        train and test splits from ``root`` (the data folder), downloading them there first when
        ``download`` is true and it knows how. A missing data set raises
        ``harness.data.DataError`` saying where to put the files.

        ``register(prefix, loader, argument="SYNTAX")`` registers a family of data sets named
        ``PREFIX:ARGUMENT`` (``folder:PATH``, ``torchvision:NAME``): the loader is then called as
        ``loader(root, download, argument)`` with the text after the first colon, and ``SYNTAX``
        says what that text may be (``harness plugins`` shows it). A loader may return images
        read from disk (``harness.streaming.ImageFiles``) in place of arrays.
    """


@hookspec
def register_corruptions(register: Register) -> None:
    """Register corruptions.

    Parameters
    ----------
    register : callable
        ``register(name: str, corrupt)``, where
        ``corrupt(data: harness.data.ImageDataset, p: float, rng: numpy.random.Generator)
        -> harness.data.ImageDataset`` returns the corrupted data set. It receives float images
        in [0, 1], takes its randomness from ``rng`` only (so a seed fixes it), and never changes
        the test labels; ``p`` is the corruption probability in [0, 1].

        ``register(name, corrupt, per_example=True)`` declares that ``corrupt`` also takes data sets
        whose images are read from disk (``harness.streaming.ImageFiles``): it changes labels as
        arrays and images only through ``harness.data.transform_images``. Other corruptions take
        only data sets held in memory.

        A corruption should say which training examples it changed: ``data.replace(corrupted=mask)``
        with an (N,) bool array (label or input changed), and for a label corruption also
        ``redrawn=mask`` (labels drawn anew, changed or not). Both are optional: when ``corrupted``
        is not set, the harness compares labels and inputs before and after (an example is
        corrupted if its label or any input value differs); ``redrawn`` then stays null. The
        labels before the corruption are kept as ``y_train_true``. A corruption never changes the
        number of examples.
    """


@hookspec
def register_regularizers(register: Register) -> None:
    """Register regularizers.

    Parameters
    ----------
    register : callable
        ``register(name: str, factory)``, where
        ``factory(value: str | None) -> harness.regularizers.Regularizer`` builds the regularizer
        of ``--regularizer NAME[=VALUE]`` and raises ``harness.regularizers.RegularizerError``
        for a bad value.
    """


@hookspec
def register_feature_maps(register: Register) -> None:
    """Register kernel feature maps.

    Parameters
    ----------
    register : callable
        ``register(name: str, factory)``, where ``factory(**options)`` returns an object with
        ``blocks(x_train: numpy.ndarray, x_test: numpy.ndarray)``, an iterator of
        ``(features_train, features_test)`` float32 arrays of shape (n, d_b) and (m, d_b) for
        successive blocks of feature dimensions (images are (N, H, W, C) floats in [0, 1]), and
        ``dim(input_shape: tuple[int, int, int]) -> int``, the total feature dimension.
        ``options`` come from ``--feature-option NAME=VALUE``; a factory that takes ``seed: int``
        or ``device: str`` receives the run's seed and "cpu" or "cuda".
    """


@hookspec
def register_executors(register: Register) -> None:
    """Register sweep executors.

    Parameters
    ----------
    register : callable
        ``register(name: str, factory, engine: str | None = None, extra: str | None = None)``, where
        ``factory(settings: harness.executors.ExecutorSettings, **options) -> harness.executors.Executor``
        runs a sweep's configurations on an engine; ``engine`` is the importable package it needs and
        ``extra`` the ``harness[extra]`` that installs it (named in the error when it is missing).
    """


@hookspec
def register_loggers(register: Register) -> None:
    """Register loggers: observers of a run's events, chosen per run with ``--log NAME[=URI]``.

    Parameters
    ----------
    register : callable
        ``register(name: str, factory, engine: str | None = None, extra: str | None = None)``, where
        ``factory(uri: str | None) -> object`` makes the logger of one run: an object whose methods,
        marked ``@harness.hookimpl``, implement hooks of :class:`RunEvents`. ``uri`` is the text after
        ``=`` in ``--log NAME=URI`` (None without it). ``engine`` is the importable package the logger
        needs and ``extra`` the ``harness[extra]`` that installs it (named in the error when it is missing).
    """


@hookspec
def register_commands(app: typer.Typer) -> None:
    """Add sub-commands to the command line.

    Parameters
    ----------
    app : typer.Typer
        The ``harness`` app; add commands with ``@app.command(name)`` or groups with
        ``app.add_typer``. A plugin whose hook raises is reported in one line and skipped.
    """


@hookspec
def register_model_libraries(register: Register) -> None:
    """Register architecture libraries, whose models are named ``LIBRARY:ARCH[,OPTION=VALUE...]``.

    Parameters
    ----------
    register : callable
        ``register(name: str, library)``, where ``library`` is a
        :class:`harness.architectures.ModelLibrary`: it lists its architecture names and builds
        one for an input shape, a number of classes and constructor options.
    """


class RunEvents:
    """Events of one training run, delivered to the loggers asked for with ``--log``.

    They are called in the process that trains the run, whatever the executor. A logger that raises
    is named in one warning line and not called again for that run; the run goes on, its results are
    unchanged, and the error is counted in its ``runs.logger_errors``.
    """

    @hookspec
    def run_started(
        self, run_id: str, config: RunConfig, results_dir: Path, resumed_from_epoch: int, sweep: str | None
    ) -> None:
        """A run starts training (or continues from its checkpoint).

        Parameters
        ----------
        run_id : str
            The run's id (``runs.run_id``).
        config : harness.config.RunConfig
            The run's configuration, with the learning rate resolved.
        results_dir : pathlib.Path
            The results folder the run is stored in.
        resumed_from_epoch : int
            Epochs restored from a checkpoint (0: from scratch); the next ``epoch_finished`` is for
            epoch ``resumed_from_epoch + 1``. An epoch delivered before an interrupt but after the
            last checkpoint is delivered again, with the same row.
        sweep : str or None
            The sweep spec's name (its file name without ``.toml``), None outside a sweep.
        """

    @hookspec
    def epoch_finished(self, run_id: str, row: dict) -> None:
        """An epoch was trained and evaluated.

        Parameters
        ----------
        run_id : str
            The run's id.
        row : dict
            The epoch's row of the ``epochs`` table (column name to value; ``holdout_*`` are None
            without an early-stopping holdout). Do not change it.
        """

    @hookspec
    def run_finished(self, run_id: str, row: dict) -> None:
        """A run ended and its row is about to be stored.

        Parameters
        ----------
        run_id : str
            The run's id.
        row : dict
            The run's row of the ``runs`` table; ``row["status"]`` is ``completed``, ``interrupted``
            or ``failed`` (then ``row["error"]`` says why), and ``row["logger_errors"]`` counts the
            logger errors before this call. Do not change it.
        """

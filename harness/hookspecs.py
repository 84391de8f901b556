"""Hook specifications: every model, dataset, corruption, regularizer, feature map, sweep executor
and extra CLI command, built-in or third-party, is registered through these hooks.

A plugin implements a hook with ``@harness.hookimpl`` on a function of the same name. Each
``register_*`` hook is called once, with one argument, ``register``: a callable
``register(name: str, obj, **info) -> None`` that adds ``obj`` under ``name``. A name taken twice is
an error naming both plugins; built-in names are never overridden. Implementing a hook that is
not listed here (a typo such as ``register_model``) makes the plugin fail to load.
"""

import pluggy

hookspec = pluggy.HookspecMarker("harness")


@hookspec
def register_models(register):
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
def register_datasets(register):
    """Register data sets.

    Parameters
    ----------
    register : callable
        ``register(name: str, loader)``, where
        ``loader(root: pathlib.Path, download: bool) -> harness.data.ImageDataset`` loads the
        train and test splits from ``root`` (the data folder), downloading them there first when
        ``download`` is true and it knows how. A missing data set raises
        ``harness.data.DataError`` saying where to put the files.
    """


@hookspec
def register_corruptions(register):
    """Register corruptions.

    Parameters
    ----------
    register : callable
        ``register(name: str, corrupt)``, where
        ``corrupt(data: harness.data.ImageDataset, p: float, rng: numpy.random.Generator)
        -> harness.data.ImageDataset`` returns the corrupted data set. It receives float images
        in [0, 1], takes its randomness from ``rng`` only (so a seed fixes it), and never changes
        the test labels; ``p`` is the corruption probability in [0, 1].

        A corruption should say which training examples it changed: ``data.replace(corrupted=mask)``
        with an (N,) bool array (label or input changed), and for a label corruption also
        ``redrawn=mask`` (labels drawn anew, changed or not). Both are optional: when ``corrupted``
        is not set, the harness compares labels and inputs before and after (an example is
        corrupted if its label or any input value differs); ``redrawn`` then stays null. The
        labels before the corruption are kept as ``y_train_true``. A corruption never changes the
        number of examples.
    """


@hookspec
def register_regularizers(register):
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
def register_feature_maps(register):
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
def register_executors(register):
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
def register_commands(app):
    """Add sub-commands to the command line.

    Parameters
    ----------
    app : typer.Typer
        The ``harness`` app; add commands with ``@app.command(name)`` or groups with
        ``app.add_typer``. A plugin whose hook raises is reported in one line and skipped.
    """


@hookspec
def register_model_libraries(register):
    """Register architecture libraries, whose models are named ``LIBRARY:ARCH[,OPTION=VALUE...]``.

    Parameters
    ----------
    register : callable
        ``register(name: str, library)``, where ``library`` is a
        :class:`harness.architectures.ModelLibrary`: it lists its architecture names and builds
        one for an input shape, a number of classes and constructor options.
    """

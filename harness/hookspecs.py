"""Hook specifications: every model, dataset, corruption, regularizer, feature map
and extra CLI command, built-in or third-party, is registered through these hooks.

Each ``register_*`` hook receives a ``register(name, obj, **info)`` callable.
"""

import pluggy

hookspec = pluggy.HookspecMarker("harness")


@hookspec
def register_models(register):
    """Register model factories.

    ``register(name, factory, default_lr=None)`` where
    ``factory(input_shape=(C, H, W), num_classes=K, **options) -> torch.nn.Module``.
    Options a factory accepts (e.g. ``dropout``) are the ones regularizers may pass.
    """


@hookspec
def register_datasets(register):
    """Register data sets: ``register(name, loader)`` where
    ``loader(root: pathlib.Path, download: bool) -> harness.data.ImageDataset``."""


@hookspec
def register_corruptions(register):
    """Register corruptions: ``register(name, corrupt)`` where
    ``corrupt(data: ImageDataset, p: float, rng: numpy.random.Generator) -> ImageDataset``
    acts on float images in [0, 1] and never changes test labels or the number of examples.

    A corruption should say which training examples it changed: ``data.replace(corrupted=mask)``
    with an (N,) bool array (label or input changed), and for a label corruption also
    ``redrawn=mask`` (labels drawn anew, changed or not). Both are optional: when
    ``corrupted`` is not set, the harness compares labels and inputs before and after
    (an example is corrupted if its label or any input value differs); ``redrawn`` then
    stays null. The labels before the corruption are kept as ``y_train_true``.
    """


@hookspec
def register_regularizers(register):
    """Register regularizers: ``register(name, factory)`` where
    ``factory(value: str | None) -> harness.regularizers.Regularizer``."""


@hookspec
def register_feature_maps(register):
    """Register kernel feature maps: ``register(name, factory)``; see ``harness.kernels``."""


@hookspec
def register_commands(app):
    """Add sub-commands to the ``harness`` Typer app."""

"""Models from architecture libraries by name: ``LIBRARY:ARCH[,OPTION=VALUE...]``.

A model library (torchvision, timm) is registered under a prefix; ``timm:convnext_atto,patch_size=1``
names the library's ``convnext_atto`` built with ``patch_size=1`` (values are read by
:func:`harness.options.parse_key_value`). Every model is built randomly
initialized for the data set's input shape and number of classes; before it is built, a copy on
PyTorch's meta device (no memory, no random draws) checks that it takes that input, so a model that
cannot take it is one clear line, with the size option that would make it fit when one exists.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass

import torch
from torch import nn

from harness.errors import ConfigError
from harness.options import parse_key_value

SIZE_OPTIONS = ("patch_size",)
"""Constructor options that shrink a model's first downsampling; tried smaller when an input is too small."""


class ArchitectureError(ConfigError):
    """An unknown architecture, a bad option, or an input the architecture cannot take."""


def format_value(value) -> str:
    """The canonical text of an option value, which :func:`harness.options.parse_key_value` reads back."""
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)


def parse_model_name(name: str) -> tuple[str, str, dict]:
    """``"timm:vit_tiny_patch16_224,patch_size=4"`` -> ``("timm", "vit_tiny_patch16_224", {"patch_size": 4})``."""
    library, _, rest = name.partition(":")
    arch, *pairs = [part.strip() for part in rest.split(",")]
    options = {}
    for pair in pairs:
        key, value = parse_key_value(pair, expected=f"model option KEY=VALUE in '{name}'", error=ArchitectureError)
        if key in options:
            raise ArchitectureError(f"model option '{key}' is given twice in '{name}'")
        options[key] = value
    return library.strip(), arch, options


def model_name(library: str, arch: str, options: dict) -> str:
    """The canonical name: options sorted by key, values in canonical form (the run id hashes it)."""
    return ",".join([f"{library}:{arch}", *(f"{key}={format_value(options[key])}" for key in sorted(options))])


def closest(name: str, known: list[str], count: int = 5) -> str:
    """The known names closest to ``name`` (difflib), for an error line."""
    matches = difflib.get_close_matches(name, known, n=count, cutoff=0.6)
    return ", ".join(matches) if matches else "(no close match)"


def param_count(model: nn.Module) -> int:
    """Trainable parameters of a model (meta tensors count too)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class ModelLibrary:
    """An architecture library: lists its names and builds a model from a name and constructor options.

    Subclasses set ``name`` (the prefix) and ``drop_rate_option`` (the constructor's dropout
    option name) and implement :meth:`names`, :meth:`version` and :meth:`construct`.
    """

    name: str = ""
    drop_rate_option: str = ""
    extra: str | None = None
    """The ``harness[extra]`` that installs the library, when it is not a core dependency."""

    def __init__(self):
        self._parameters: dict[str, frozenset[str]] = {}

    def available(self) -> bool:
        """Whether the library can be imported."""
        return True

    def names(self) -> list[str]:
        """Every architecture name the library's own lister knows."""
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def construct(
        self,
        arch: str,
        input_shape: tuple[int, int, int] | None,
        num_classes: int | None,
        options: dict,
        pretrained: bool,
    ) -> nn.Module:
        """The library's model for (C, H, W) inputs and ``num_classes`` outputs, with ``options``
        (None: the library's defaults)."""
        raise NotImplementedError

    def constructor_parameters(self, arch: str) -> frozenset[str]:
        """The keyword options of the model class's constructor (from a default build on the meta device)."""
        if arch not in self._parameters:
            with torch.device("meta"):
                model = self.construct(arch, None, None, {}, pretrained=False)
            self._parameters[arch] = frozenset(inspect.signature(type(model).__init__).parameters) - {"self"}
        return self._parameters[arch]

    def check_available(self) -> None:
        if not self.available():
            hint = f": pip install 'harness[{self.extra}]'" if self.extra else ""
            raise ArchitectureError(f"model library {self.name} is not installed{hint}")

    def architecture(self, name: str) -> Architecture:
        """The architecture a ``LIBRARY:ARCH[,OPTION=VALUE...]`` name asks for; an unknown one lists the closest names."""
        self.check_available()
        _, arch, options = parse_model_name(name)
        known = self.names()
        if arch not in known:
            raise ArchitectureError(f"unknown {self.name} model '{arch}'; closest: {closest(arch, known)}")
        pretrained = options.pop("pretrained", False)
        if not isinstance(pretrained, bool):
            raise ArchitectureError(f"pretrained must be true or false, got {pretrained!r}")
        return Architecture(self, arch, options, pretrained)


@dataclass(frozen=True)
class Architecture:
    """A model factory (``factory(input_shape, num_classes, **regularizer_options)``) for one named
    architecture with fixed constructor options; it takes ``dropout`` when the constructor takes a drop rate."""

    library: ModelLibrary
    arch: str
    options: dict
    pretrained: bool = False

    @property
    def name(self) -> str:
        extra = {"pretrained": True} if self.pretrained else {}
        return model_name(self.library.name, self.arch, {**self.options, **extra})

    def constructor_parameters(self) -> set[str]:
        """The keyword options of the model class's constructor."""
        return self.library.constructor_parameters(self.arch)

    @property
    def __signature__(self) -> inspect.Signature:
        parameters = [
            inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in ("input_shape", "num_classes")
        ]
        if self.library.drop_rate_option in self.constructor_parameters():
            parameters.append(inspect.Parameter("dropout", inspect.Parameter.KEYWORD_ONLY, default=0.0))
        return inspect.Signature(parameters)

    def __call__(
        self, input_shape: tuple[int, int, int], num_classes: int, *, dropout: float | None = None
    ) -> nn.Module:
        options = dict(self.options)
        if dropout is not None:
            if self.library.drop_rate_option in options:
                raise ArchitectureError(
                    f"{self.name}: the dropout regularizer and the model option "
                    f"{self.library.drop_rate_option} both set the drop rate; keep one"
                )
            options[self.library.drop_rate_option] = dropout
        self.check_input(tuple(input_shape), num_classes, options)
        return self.library.construct(self.arch, tuple(input_shape), num_classes, options, self.pretrained)

    def meta_build(
        self, input_shape: tuple[int, int, int], num_classes: int, options: dict
    ) -> tuple[int | None, str | None]:
        """(parameter count, None) when the model with ``options`` takes (C, H, W) inputs, else (None,
        why not); from a build and a forward pass on the meta device (no memory, no random draws).
        (None, None) when an operation has no meta implementation, so nothing could be checked."""
        try:
            with torch.device("meta"):
                model = self.library.construct(self.arch, input_shape, num_classes, options, pretrained=False)
                output = model.eval()(torch.zeros(2, *input_shape))
        except NotImplementedError:  # an operation without a meta implementation: the real build will tell
            return None, None
        except (RuntimeError, AssertionError, ValueError, TypeError) as error:
            return None, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        patch = next(
            (m.patch_size for m in model.modules() if isinstance(getattr(m, "patch_size", None), (int, tuple))), None
        )
        if patch is not None:  # a patch embedding drops the pixels past the last whole patch
            patch = tuple(patch) if isinstance(patch, tuple) else (patch, patch)
            if input_shape[1] % patch[0] or input_shape[2] % patch[1]:
                return None, f"the input side is not a multiple of the patch size {patch[0]}x{patch[1]}"
        if tuple(output.shape) != (2, num_classes):
            return None, f"its output has shape {tuple(output.shape)[1:]}, not ({num_classes},)"
        return param_count(model), None

    def check_input(self, input_shape: tuple[int, int, int], num_classes: int, options: dict) -> None:
        """Raise one clear line when the model cannot take ``input_shape``, naming a size option that fits."""
        _, error = self.meta_build(input_shape, num_classes, options)
        if error is None:
            return
        if error.startswith("TypeError") and "keyword argument" in error:
            known = sorted(self.constructor_parameters() - {"num_classes", "in_chans", "img_size", "image_size"})
            raise ArchitectureError(f"{self.name}: {error}; its options: {', '.join(known)}")
        shape = "x".join(map(str, input_shape))
        raise ArchitectureError(
            f"{self.name} cannot take {shape} input ({error}){self.size_hint(input_shape, num_classes, options)}"
        )

    def size_hint(self, input_shape: tuple[int, int, int], num_classes: int, options: dict) -> str:
        """The end of the error line: a smaller value of a size option that fits, or that none does."""
        parameters = self.constructor_parameters()
        for option in SIZE_OPTIONS:
            if option not in parameters:
                continue
            for value in sorted((d for d in range(1, input_shape[1]) if input_shape[1] % d == 0), reverse=True):
                if (
                    value < options.get(option, value + 1)
                    and self.meta_build(input_shape, num_classes, {**options, option: value})[1] is None
                ):
                    fitting = Architecture(self.library, self.arch, {**self.options, option: value}, self.pretrained)
                    return f"; {fitting.name} takes it"
        return "; no size option of the library makes it fit"


def search(library: ModelLibrary, term: str, input_shape: tuple[int, int, int], num_classes: int) -> list[dict]:
    """The library's architectures whose name contains ``term``, each with its parameter count for
    (C, H, W) inputs and ``num_classes`` classes, or why it cannot take them."""
    rows = []
    for arch in library.names():
        if term.lower() in arch.lower():
            architecture = Architecture(library, arch, {})
            count, error = architecture.meta_build(input_shape, num_classes, {})
            rows.append({"name": architecture.name, "params": count, "error": error})
    return rows

"""Plugin manager and registry of named models, data sets, corruptions,
regularizers, feature maps, sweep executors and loggers.

Built-in plugins and third-party ones (entry-point group ``harness``) register
through the same hooks. A third-party plugin that fails to load or register is
reported in one line and skipped, unless strict mode is on
(``HARNESS_STRICT_PLUGINS=1``), where it is an error.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import pluggy

from harness import __version__, hookspecs
from harness.errors import HarnessError

ENTRY_POINT_GROUP = "harness"
STRICT_ENV = "HARNESS_STRICT_PLUGINS"
KINDS = ("models", "model_libraries", "datasets", "corruptions", "regularizers", "feature_maps", "executors", "loggers")
SINGULAR = {
    "models": "model",
    "model_libraries": "model library",
    "datasets": "dataset",
    "corruptions": "corruption",
    "regularizers": "regularizer",
    "feature_maps": "feature map",
    "executors": "executor",
    "loggers": "logger",
}
BUILTIN_PLUGINS = (
    "harness.plugins.datasets",
    "harness.plugins.corruptions",
    "harness.plugins.mlp",
    "harness.plugins.cnn",
    "harness.plugins.imagenet",
    "harness.plugins.folders",
    "harness.plugins.architectures",
    "harness.plugins.regularizers",
    "harness.plugins.feature_maps",
    "harness.plugins.executors",
    "harness.plugins.loggers",
)
BUILTIN_SOURCE = f"harness {__version__} (built-in)"


class PluginError(HarnessError):
    """A plugin could not be loaded or registered."""


class UnknownNameError(HarnessError, LookupError):
    """A name that no plugin registered; the message lists the known ones."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        super().__init__(f"unknown {SINGULAR[kind]} '{name}'; known: {', '.join(known) or '(none)'}")


@dataclass(frozen=True)
class Entry:
    """One registered object and where it came from."""

    kind: str
    name: str
    obj: object
    source: str
    info: dict = field(default_factory=dict)


class Registry:
    """Named objects of each kind, filled by the ``register_*`` hooks."""

    def __init__(self):
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self.warnings: list[str] = []
        self.plugin_manager: pluggy.PluginManager | None = None
        self.sources: dict[str, str] = {}
        self.strict = False
        self._architectures: dict[str, Entry] = {}

    def add(self, kind: str, name: str, obj: object, source: str, **info) -> None:
        existing = self._entries[kind].get(name)
        if existing is not None:
            raise PluginError(f"{SINGULAR[kind]} '{name}' is registered twice: by {existing.source} and by {source}")
        self._entries[kind][name] = Entry(kind, name, obj, source, info)

    def get(self, kind: str, name: str) -> Entry:
        if kind == "models" and ":" in name:
            return self.architecture(name)
        if kind == "datasets" and ":" in name:
            return self.dataset_family(name)
        try:
            return self._entries[kind][name]
        except KeyError:
            raise UnknownNameError(kind, name, self.usages(kind)) from None

    def architecture(self, name: str) -> Entry:
        """The model entry of ``LIBRARY:ARCH[,OPTION=VALUE...]``, named canonically (options sorted)."""
        if name not in self._architectures:
            library = self.get("model_libraries", name.partition(":")[0].strip()).obj
            architecture = library.architecture(name)
            version = library.version()
            self._architectures[name] = Entry(
                "models",
                architecture.name,
                architecture,
                f"{library.name} {version}",
                {"library": library.name, "library_version": version},
            )
        return self._architectures[name]

    def dataset_family(self, name: str) -> Entry:
        """The data set ``PREFIX:ARGUMENT`` of a family registered with an ``argument`` (``folder:PATH``):
        its loader with the argument bound."""
        prefix, _, argument = name.partition(":")
        family = self.get("datasets", prefix.strip())
        if "argument" not in family.info:
            raise UnknownNameError("datasets", name, self.usages("datasets"))
        loader = functools.partial(family.obj, argument=argument.strip())
        return Entry("datasets", name, loader, family.source, family.info)

    def usages(self, kind: str) -> list[str]:
        """The names of ``kind`` as a user writes them: a family as ``PREFIX:ARGUMENT`` (``folder:PATH...``)."""
        return [f"{e.name}:{e.info['argument']}" if "argument" in e.info else e.name for e in self.entries(kind)]

    def names(self, kind: str) -> list[str]:
        return sorted(self._entries[kind])

    def entries(self, kind: str) -> list[Entry]:
        return [self._entries[kind][name] for name in self.names(kind)]


def missing_engine(entry: Entry) -> str | None:
    """Why ``entry`` cannot be used: the package it needs (its ``engine``) is not installed; None when it can."""
    engine = entry.info.get("engine")
    if engine and importlib.util.find_spec(engine) is None:
        extra = entry.info.get("extra")
        install = f"'harness[{extra}]'" if extra else engine
        return f"{SINGULAR[entry.kind]} '{entry.name}' needs {engine}, which is not installed: pip install {install}"
    return None


def strict_mode() -> bool:
    return os.environ.get(STRICT_ENV, "") not in ("", "0", "false", "no")


def _report(message: str, registry: Registry, strict: bool) -> None:
    if strict:
        raise PluginError(message)
    registry.warnings.append(message)


def plugin_manager(registry: Registry | None = None, strict: bool = False) -> tuple[pluggy.PluginManager, dict]:
    """A plugin manager holding the built-in and installed plugins, and each one's source."""
    registry = registry if registry is not None else Registry()
    pm = pluggy.PluginManager("harness")
    pm.add_hookspecs(hookspecs)
    sources = {}
    for module_name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
        sources[module_name] = BUILTIN_SOURCE
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else ep.value
        try:
            pm.register(ep.load(), name=f"{ENTRY_POINT_GROUP}:{ep.name}")
        except Exception as error:  # a broken plugin must not take the CLI down
            _report(f"plugin {dist} failed to load: {type(error).__name__}: {error}", registry, strict)
            continue
        sources[f"{ENTRY_POINT_GROUP}:{ep.name}"] = dist
    drop_unknown_hooks(pm, sources, registry, strict)
    return pm, sources


def hook_names() -> list[str]:
    """The names of every hook a plugin may implement."""
    return sorted(name for name in vars(hookspecs) if name.startswith("register_"))


def drop_unknown_hooks(pm: pluggy.PluginManager, sources: dict, registry: Registry, strict: bool) -> None:
    """Report and unregister every plugin that implements a hook with no specification (a typo
    such as ``register_model``), as pluggy's ``check_pending`` finds them."""
    while True:
        try:
            pm.check_pending()
            return
        except pluggy.PluginValidationError as error:
            name = pm.get_name(error.plugin)
            if sources.get(name) == BUILTIN_SOURCE:
                raise
            hooks = sorted(
                impl_name
                for impl_name, caller in vars(pm.hook).items()
                if not impl_name.startswith("_")
                and not caller.has_spec()
                and any(impl.plugin is error.plugin for impl in caller.get_hookimpls())
            )
            pm.unregister(error.plugin)
            source = sources.pop(name, name)
            _report(
                f"plugin {source} failed to load: it implements unknown hook(s) {', '.join(hooks)}; "
                f"known: {', '.join(hook_names())}",
                registry,
                strict,
            )


def build_registry(strict: bool | None = None) -> Registry:
    """Load every plugin and collect what it registers."""
    strict = strict_mode() if strict is None else strict
    registry = Registry()
    registry.strict = strict
    pm, sources = plugin_manager(registry, strict)
    for kind in KINDS:
        caller = getattr(pm.hook, f"register_{kind}")
        # Built-ins first, so a third party can never take a built-in name silently.
        impls = sorted(caller.get_hookimpls(), key=lambda impl: sources[impl.plugin_name] != BUILTIN_SOURCE)
        for impl in impls:
            source = sources[impl.plugin_name]

            def register(name, obj, _source=source, _kind=kind, **info):
                registry.add(_kind, name, obj, _source, **info)

            try:
                impl.function(register=register)
            except Exception as error:
                if source == BUILTIN_SOURCE:
                    raise
                _report(f"plugin {source} failed to register {kind}: {error}", registry, strict)
    registry.plugin_manager, registry.sources = pm, sources
    return registry


@functools.cache
def get_registry() -> Registry:
    """The process-wide registry (built on first use)."""
    return build_registry()

"""harness: randomization tests for neural networks and kernel machines."""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("harness")
"""Marker for plugin hook implementations: ``@harness.hookimpl``."""

__all__ = ["__version__", "hookimpl"]

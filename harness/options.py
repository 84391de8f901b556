"""``KEY=VALUE`` options, one rule everywhere: executor options, feature-map options and the options
in a model name all read VALUE as a TOML value when it is one (``60``, ``true``, ``1e-3``, ``"x"``,
``{a = "b"}``), else as the plain string."""

from __future__ import annotations

import math
import os
import tomllib

from harness.errors import ConfigError


def parse_key_value(
    text: str, *, expected: str = "KEY=VALUE", error: type[ConfigError] = ConfigError
) -> tuple[str, object]:
    """Split ``KEY=VALUE`` into the key and the value read as TOML, else as the plain string.

    Parameters
    ----------
    text : str
        The option, ``KEY=VALUE``; spaces around the key and the value are dropped.
    expected : str
        What ``text`` should be, as the error message names it (e.g. ``"executor option KEY=VALUE"``).
    error : type of ConfigError
        The error raised when ``text`` has no ``=`` or an empty key.

    Returns
    -------
    tuple of (str, object)
        The key, and the value: a TOML value (int, float, bool, string, array, table, date) when
        VALUE is one, else VALUE itself.

    Raises
    ------
    ConfigError
        Of type ``error``, when ``text`` has no ``=`` or an empty key.

    Examples
    --------
    >>> parse_key_value("timeout_min=60"), parse_key_value("lr=1e-3"), parse_key_value("partition=gpu")
    (('timeout_min', 60), ('lr', 0.001), ('partition', 'gpu'))
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise error(f"expected {expected}, got '{text}'")
    try:
        parsed = tomllib.loads(f"value = {value}")["value"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return key.strip(), parsed


def seconds_from_env(name: str, default: float) -> float:
    """The environment variable ``name`` read as a number of seconds above 0, ``default`` when it is unset
    or empty; ConfigError when it is not such a number."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"{name} must be a number of seconds above 0, got '{text}'")
    return seconds

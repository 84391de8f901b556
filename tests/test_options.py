"""``KEY=VALUE`` options: one rule for executor options, feature-map options and model-name options."""

import pytest

from harness.errors import ConfigError
from harness.options import parse_key_value


@pytest.mark.parametrize(
    "text, expected",
    [
        ("timeout_min=60", ("timeout_min", 60)),
        ("verbose=true", ("verbose", True)),
        ("lr=1e-3", ("lr", 0.001)),
        ('name="x"', ("name", "x")),
        ("partition = gpu", ("partition", "gpu")),
        ("address=ray://head:10001", ("address", "ray://head:10001")),
        ("empty=", ("empty", "")),
    ],
)
def test_values_are_toml_values_else_plain_strings(text, expected):
    assert parse_key_value(text) == expected


@pytest.mark.parametrize("text", ["scales", "=4"])
def test_text_without_a_key_is_an_error_of_the_callers_type(text):
    class CallerError(ConfigError):
        pass

    with pytest.raises(CallerError, match=f"expected --feature-option NAME=VALUE, got '{text}'"):
        parse_key_value(text, expected="--feature-option NAME=VALUE", error=CallerError)

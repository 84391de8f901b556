"""Errors a user can fix: an unknown name, a bad value, missing data, a bad spec or results folder,
a memory budget too small. The command line shows these as one line and exits with code 2; any
other exception is a bug and is shown with its traceback."""


class HarnessError(Exception):
    """Base of every error caused by the input, not by a bug."""


class ConfigError(HarnessError, ValueError):
    """An option or configuration value is out of range or malformed."""


class DataError(HarnessError):
    """A data set cannot be found or loaded."""

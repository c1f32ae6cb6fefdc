"""The errors a user can fix, each a one-line message naming the setting or file to change.

Kept free of torch so that the CLI can catch them without importing it (a torch import
costs seconds per job).
"""
from __future__ import annotations


class ConfigError(ValueError):
    """params.yaml (or an override) is invalid; the message names the key."""


class DataSourceError(RuntimeError):
    """A data set cannot be prepared from the configured source."""


class CorruptFileError(RuntimeError):
    """A file does not match its recorded checksum, or is not a tensor file that vqrepro wrote."""


class NonFiniteLossError(RuntimeError):
    """Training produced NaN or inf; no checkpoint is written."""


# What `python -m vqrepro <verb>` reports as one line and exit status 1 instead of a traceback.
USER_ERRORS = (ConfigError, DataSourceError, CorruptFileError, NonFiniteLossError, FileNotFoundError)

"""The one place for riskmap's exceptions and warnings.

Every error derives from :class:`RiskmapError` and also from the nearest builtin,
so callers can catch either.  Messages name the file, layer, column, row or rule
concerned.  Data problems that should not stop a run are :class:`RiskmapWarning`
subclasses, issued with :func:`warnings.warn`.

The CLI maps errors to exit codes (see :attr:`RiskmapError.exit_code`):
0 done, 2 bad input or usage, 3 a needed service unavailable, 4 refused,
1 unexpected internal error.

Examples
--------
>>> err = RegionError("villages.gpkg: layer 'villages' row code=5101: missing column 'name'")
>>> isinstance(err, ValueError), err.exit_code
(True, 2)
"""

from __future__ import annotations


class RiskmapError(Exception):
    """Root of every riskmap error."""

    exit_code: int = 1


class InputError(RiskmapError, ValueError):
    """Bad input or usage: a file, a column, a value, an option (exit 2)."""

    exit_code = 2


class ConfigError(InputError):
    """The settings file (``riskmap.toml``) is invalid; names the file and key."""


class RegionError(InputError):
    """A region layer cannot be loaded or fails its schema; names layer, row and column."""


class ForecastError(InputError):
    """A forecast or observed-rainfall input cannot be read or normalised; names file and variable."""


class RuleError(InputError):
    """A rule, routing or template file is invalid; names file, rule and key."""


class PhoneNumberError(InputError):
    """A malformed phone number (the message masks the number)."""


class RiskmapIOError(RiskmapError, OSError):
    """A file could not be read or written."""

    exit_code = 2


class ServiceUnavailable(RiskmapError, ConnectionError):
    """A needed service (database, SMS gateway) cannot be reached (exit 3)."""

    exit_code = 3


class StoreError(RiskmapError, RuntimeError):
    """The warning store is inconsistent or has a newer schema than this riskmap knows."""

    exit_code = 1


class StoreLocked(RiskmapError, RuntimeError):
    """The store is held by a running service; the action is refused (exit 4)."""

    exit_code = 4


class CapError(RiskmapError, ValueError):
    """A CAP message fails the CAP 1.2 schema or the checks the schema does not make; names the identifier."""

    exit_code = 1


class RiskmapWarning(UserWarning):
    """Root of riskmap's warnings: a data problem that does not stop the run."""


class DataWarning(RiskmapWarning):
    """Input data is suspicious but usable (e.g. NaN cells over a village)."""


class CoverageWarning(DataWarning):
    """The forecast grid does not fully cover some villages."""

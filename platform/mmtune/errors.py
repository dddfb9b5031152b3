"""User-facing errors.

A ``UserError`` is a mistake in the user's input (a file, a YAML key, a table row). The CLI prints its message
as one line and exits with code 2; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """An error caused by the user's input; the message must name the file/row/key and what was expected."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class ConfigError(UserError):
    """A YAML file or key is missing, misspelt or of the wrong type."""


class DataError(UserError):
    """Raw or prepared data do not match what the card or config says."""


class UnknownComponentError(ConfigError):
    """A component name is not in its registry."""

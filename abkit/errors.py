"""The exceptions abkit raises on purpose.

Every error a user can cause derives from :class:`AbkitError`; the CLI turns one into a
single line on stderr and a non-zero exit. Errors about input data carry a location
(file, row, field) so the message says exactly where to look.
"""

from __future__ import annotations

from dataclasses import dataclass


class AbkitError(Exception):
    """Base class of every error abkit raises for a user to act on."""

    exit_code: int = 2


@dataclass(frozen=True)
class Location:
    """Where in an input a problem was found; any part may be unknown."""

    file: str | None = None
    row: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        parts = []
        if self.file is not None:
            parts.append(str(self.file))
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.field is not None:
            parts.append(f"field {self.field!r}")
        return ", ".join(parts)


class LocatedError(AbkitError):
    """An error tied to a place in an input file or configuration."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.location = Location(file=file, row=row, field=field)
        self.message = message
        where = str(self.location)
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(LocatedError):
    """An experiment, metric or registry definition is invalid."""


class DataError(LocatedError):
    """Input data cannot be read or does not honour the schema contract."""


class StoreError(AbkitError):
    """The SQL store cannot be opened, migrated or written."""


class NotEnoughDataError(AbkitError):
    """A statistic was asked of data that cannot support it (for example one unit)."""

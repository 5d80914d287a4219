"""Store dialects: one module per database, found by SQLAlchemy's dialect name.

Adding a dialect is one module that subclasses :class:`~abkit.store.dialects.base.Dialect`
(overriding what its database does better: bulk insert, conflict detection, connection
preparation, exclusive locks) and decorates it with
:func:`~abkit.store.dialects.base.register`, plus its name in the import below. A
database with no registered dialect gets the portable base class.
"""

from __future__ import annotations

# Importing the modules registers them; none imports a database driver at import time.
from abkit.store.dialects import duckdb, postgresql, sqlite
from abkit.store.dialects.base import Dialect, InsertResult, register
from abkit.store.dialects.base import registered as dialect_class

__all__ = ["Dialect", "InsertResult", "dialect_class", "duckdb", "postgresql", "register", "sqlite"]

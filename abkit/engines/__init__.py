"""Analysis engines beyond SQLAlchemy's dialects, as :class:`~abkit.analysis.runner.QueryRunner`s.

* :mod:`abkit.engines.spark` - Apache Spark (local, ``spark://`` standalone, ``sc://``
  Spark Connect), with the compile-only dialect of :mod:`abkit.engines.spark_dialect`;
* :mod:`abkit.engines.duckdb_sqlite` - DuckDB analysing abkit's SQLite store (a columnar
  replica, or a direct read-only scan).

They are found by URL scheme through the ``abkit.runners`` entry points (pyproject.toml),
so :mod:`abkit.analysis` never imports this package. See docs/engines.md.
"""

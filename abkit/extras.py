"""Which optional extra of abkit provides which third-party module (stdlib only).

The core install is ``mmh3`` alone, so a service can ``from abkit import assign``. Everything
else comes with an extra; when a module is missing, the error names the smallest extra that
brings it, not ``abkit[all]``.
"""

from __future__ import annotations

# top-level import name -> the extra that installs it
EXTRA_OF_MODULE: dict[str, str] = {
    "sqlalchemy": "store",
    "pandas": "store",
    "numpy": "store",
    "pyarrow": "store",
    "tqdm": "store",
    "scipy": "analysis",
    "statsmodels": "analysis",
    "psycopg": "postgres",
    "duckdb": "duckdb",
    "duckdb_engine": "duckdb",
    "nbformat": "report",
    "nbclient": "report",
    "nbconvert": "report",
    "ipykernel": "report",
    "matplotlib": "report",
    "pyspark": "spark",
    "re2": "re2",
}


def missing_extra_message(module_name: str | None, *, wanted: str = "this feature") -> str:
    """One sentence telling which ``pip install 'abkit[EXTRA]'`` brings ``module_name``."""
    top = (module_name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    if extra is None:
        return f"{wanted} needs the Python package {top or module_name!r}, which is not installed"
    return (
        f"{wanted} needs the Python package {top!r}, which is not installed: "
        f"pip install 'abkit[{extra}]'"
    )

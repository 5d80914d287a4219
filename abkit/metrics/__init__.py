"""Metric definitions (Python and TOML) and the built-in library. Standard library only."""

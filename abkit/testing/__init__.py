"""Utilities for testing and benchmarking abkit (and code built on it) against real servers."""

"""Ingest exposures and events into the store: readers, validation, quarantine, Tracker."""

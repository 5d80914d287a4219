"""Warehouse-native analysis: SQL aggregates -> sufficient statistics -> readouts and decisions."""

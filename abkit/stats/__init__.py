"""Statistics on sufficient statistics: planning, readouts, checks. Knows nothing of SQL."""

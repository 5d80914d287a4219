"""The SQL store: schema, versioning and dialect-specific write paths (SQLAlchemy 2 Core)."""

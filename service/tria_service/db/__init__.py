"""Schema and migrations."""

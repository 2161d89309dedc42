"""Production core: startup validation, health, lifecycle."""

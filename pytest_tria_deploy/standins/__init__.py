"""Stand-ins for external services that cannot be reached from a test machine."""

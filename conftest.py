"""Root conftest: project-wide pytest settings only.

The plugin itself loads through its pytest11 entry point.
"""

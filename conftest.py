"""Root conftest: project-wide pytest settings only; the plugin itself loads through its entry point."""

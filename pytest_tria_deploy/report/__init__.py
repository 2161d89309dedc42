"""What a run leaves behind: the verdict (JSON and exit code) and the terminal stage table."""

"""Models arrive with the monitoring issue."""

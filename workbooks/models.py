"""Models arrive with the gallery issue."""

"""The telemetry layer: metric declarations, per-process batches and windows. It imports no other part of the
project (checked by import-linter, pyproject.toml), so every layer above may record into it."""

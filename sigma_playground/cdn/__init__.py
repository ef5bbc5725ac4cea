"""The CDN tier: surrogate-key purges after writes, through a pluggable backend (docs/edge.md)."""

"""Caching: one module for keys (keys.py), one for access (service.py), an in-process LRU (local.py), page and
fragment caching for views (pages.py). See docs/caching.md for what is cached and how it is invalidated."""

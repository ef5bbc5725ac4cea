"""The design's load test as a feature: open-model arrivals over the real forms (see __main__.py)."""

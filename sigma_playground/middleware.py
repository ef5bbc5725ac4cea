"""Cross-cutting middleware."""

from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise with a one-year lifetime for hashed files: RFC 9111 advises at most a year, and a
    content hash in the name makes "immutable" true whatever the number."""

    FOREVER = 365 * 24 * 60 * 60

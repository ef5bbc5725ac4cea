import pytest

from sigma_playground.caching import service


@pytest.fixture(autouse=True)
def page_cache(settings):
    """Caching on, with a fresh view of the backend (tests may point CACHES elsewhere)."""
    settings.PAGE_CACHE_ENABLED = True
    service.reset_backend()
    yield settings
    service.reset_backend()


def cache_hits(kind: str, result: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("sigma_cache_requests_total", {"kind": kind, "result": result}) or 0.0

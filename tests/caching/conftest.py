import pytest

from sigma_playground.caching import service
from tests.factories import UserFactory
from workbooks import services
from workbooks.models import Workbook


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


EMBED = "https://app.sigmacomputing.com/embed/1-Cache{n}"


def publish(author, title, *, tags=("finance",), n=0, **kw) -> Workbook:
    return services.workbook_publish(
        author=author,
        title=title,
        sigma_embed_url=EMBED.format(n=n or abs(hash(title)) % 10**6),
        tags=tags,
        **kw,
    )


@pytest.fixture
def world():
    author = UserFactory(username="ada", full_name="Ada Analyst")
    reader = UserFactory(username="reader", full_name="Rita Reader")
    workbook = publish(author, "Revenue waterfall", n=1)
    publish(author, "Churn cohort board", n=2)
    return {"author": author, "reader": reader, "workbook": workbook}

"""Two web instances (two gunicorn masters, as two machines would run) behind nginx and Varnish, sharing only
PostgreSQL and Redis (issue 20, section 3): a session and a CSRF token from one are good on the other, a write
through one is fresh through the other and through the CDN within a second, and Prometheus sees both, each
series with its instance label, while every dashboard panel adds them up into one site."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher
from django.urls import reverse

from deploy import edge
from tests.factories import TEST_PASSWORD
from tests.http_browser import Browser
from tests.monitoring.helpers import dashboard_targets, free_port, monitoring_stack
from workbooks.models import Favorite

pytestmark = [
    pytest.mark.edge,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

FRESH_WITHIN = 1.0  # seconds from the write's answer: the bound


@pytest.fixture(scope="module")
def edge_instances() -> int:
    return 2


def login(browser: Browser, user, *, form_from: str, post_to: str) -> None:
    """Log in with the form (and its CSRF token) of one instance, posted to another."""
    # The test settings hash with MD5 (fast); the servers know only their production hashers.
    user.password = Argon2PasswordHasher().encode(TEST_PASSWORD, Argon2PasswordHasher().salt())
    user.save(update_fields=["password"])
    browser.base = form_from
    page = browser.get(reverse("accounts:login"))
    assert page.status == 200, page.status
    browser.base = post_to
    answer = browser.post_form(
        reverse("accounts:login"), {"username": user.username, "password": TEST_PASSWORD}, page=page
    )
    assert answer.status == 302 and "sessionid" in browser.cookies, (answer.status, answer.body[-300:])


def test_a_session_and_a_csrf_token_from_one_instance_work_on_the_other(stack, world):
    one, two = stack.gunicorns
    reader, workbook = world["reader"], world["workbook"]
    browser = Browser(one)
    login(browser, reader, form_from=one, post_to=two)
    browser.base = one
    assert "Rita Reader" in browser.get(reverse("accounts:profile_edit")).body  # logged in on the first, too

    # The favorite form of the detail page served by the second instance, posted to the first.
    browser.base = two
    page = browser.get(workbook.get_absolute_url())
    assert page.status == 200
    browser.base = one
    answer = browser.post_form(reverse("workbooks:favorite", args=[workbook.pk]), {}, page=page)
    assert answer.status == 302, (answer.status, answer.body[-300:])
    assert Favorite.objects.filter(user=reader, workbook=workbook).exists()

    # A forged token is refused by either.
    for base in (one, two):
        browser.base = base
        refused = browser.request(
            "POST", reverse("workbooks:unfavorite", args=[workbook.pk]), {"csrfmiddlewaretoken": "x" * 64}
        )
        assert refused.status == 403, base
    assert Favorite.objects.filter(user=reader, workbook=workbook).exists()


def _fresh_after(bases: dict[str, str], url: str, shows: str, *, limit: float = 10) -> dict[str, float]:
    """Seconds until ``url`` shows ``shows`` through each of ``bases`` (anonymous readers), polled in turn."""
    started = time.monotonic()
    late: dict[str, float] = {}
    while len(late) < len(bases) and time.monotonic() - started < limit:
        for name, base in bases.items():
            if name in late:
                continue
            asked = time.monotonic()
            status, _, body = edge.http_get(urllib.parse.urljoin(base, url), timeout=30)
            if status == 200 and shows in body.decode(errors="replace"):
                late[name] = asked - started
        time.sleep(0.01)
    return late


def test_a_write_through_one_instance_is_fresh_through_the_other_and_the_cdn_within_a_second(stack, world):
    one, two = stack.gunicorns
    author, reader = world["author"], world["reader"]
    profile, followers = author.get_absolute_url(), reverse("profiles:followers", args=[author.username])
    readers = {"the other instance": two, "the CDN": stack.cdn, "nginx": stack.proxy}
    stack.settle()
    for base in readers.values():  # anonymous copies everywhere: the old state is cached
        for url in (profile, followers):
            for _ in range(2):
                status, _, body = edge.http_get(urllib.parse.urljoin(base, url))
                assert status == 200 and "Rita Reader" not in body.decode(), (base, url)
    assert edge.http_get(stack.cdn + profile)[1]["x-cache"] == "HIT"

    browser = Browser(one)
    login(browser, reader, form_from=one, post_to=one)
    page = browser.get(profile)
    answer = browser.post_form(reverse("profiles:follow", args=[author.username]), {}, page=page)
    assert answer.status == 302, (answer.status, answer.body[-300:])

    late = {
        "profile": _fresh_after(readers, profile, "1</strong> follower"),
        "followers": _fresh_after(readers, followers, "Rita Reader"),
    }
    print(f"a follow through instance 1, fresh after (s): {json.dumps(late)}")
    for page_name, by_reader in late.items():
        assert set(by_reader) == set(readers), (
            f"{page_name}: still stale after 10 s through {set(readers) - set(by_reader)}"
        )
        assert max(by_reader.values()) <= FRESH_WITHIN, f"{page_name}: {by_reader}"


# --- Prometheus ---------------------------------------------------------------------------------------------


def _query(prometheus: str, expr: str) -> list[dict]:
    url = f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=10) as response:
        payload = json.loads(response.read())
    assert payload["status"] == "success", payload
    return payload["data"]["result"]


def _wait(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.5)


LIST_200 = 'django_http_responses_total_by_status_view_method_total{job="sigma-web",view="workbooks:list",status="200"}'


def test_prometheus_sees_both_instances_and_the_dashboard_adds_them_up(stack, world, tmp_path: Path):
    module = monitoring_stack()
    missing = module.missing_binaries()
    assert not missing, f"missing: {missing} (.ci/run installs them)"
    prometheus = module.Stack(
        tmp_path / "monitoring", module.Ports(free_port(), free_port(), free_port(), free_port())
    )
    web = ",".join(base.removeprefix("http://") for base in stack.gunicorns)
    prometheus.start(
        web=web,
        celery=f"127.0.0.1:{free_port()}",  # no worker metrics here: that target is down, nothing reads it
        database_url=_database_url(),
        redis_url=settings.REDIS_URL,
        scrape_interval="1s",
        evaluation_interval="1s",
    )
    try:
        url = prometheus.prometheus_url
        instances = {base.removeprefix("http://") for base in stack.gunicorns}

        def both_up():
            up = _query(url, 'up{job="sigma-web"}')
            return {r["metric"]["instance"] for r in up if r["value"][1] == "1"} == instances

        _wait(both_up, 60, "both web instances scraped")

        def per_instance() -> dict[str, float]:
            return {
                r["metric"]["instance"]: float(r["value"][1])
                for r in _query(url, f"sum by (instance) ({LIST_200})")
            }

        before = {instance: 0.0 for instance in instances} | per_instance()  # no list request yet: no series
        sent = {stack.gunicorns[0]: 7, stack.gunicorns[1]: 5}
        for base, count in sent.items():
            for _ in range(count):
                assert edge.http_get(base + reverse("workbooks:list"))[0] == 200
        expected = {
            base.removeprefix("http://"): before[base.removeprefix("http://")] + n for base, n in sent.items()
        }
        after = _wait(lambda: (found := per_instance()) == expected and found, 30, f"counts {expected}")
        total = float(_query(url, f"sum({LIST_200})")[0]["value"][1])
        print(f"list responses per instance: before {before}, after {after}; sum {total}")
        assert total == sum(expected.values())

        # Every panel over the web job, evaluated on the live data: one series per legend, never one per
        # instance (a panel that did not aggregate over instances would show each instance's own line, or
        # pick one of them in a single-value panel).
        checked = 0
        for panel_id, legend, expr in dashboard_targets():
            if "sigma-web" not in expr:
                continue
            series = _query(
                url, expr.replace("$__rate_interval", "1m").replace('route=~"$route"', 'route=~".*"')
            )
            keys = [tuple(sorted(r["metric"].items())) for r in series]
            assert len(keys) == len(set(keys)), f"panel {panel_id}: duplicate series {keys}"
            assert all("instance" not in r["metric"] for r in series), (
                f"panel {panel_id} ({legend}) is per instance"
            )
            checked += 1
        assert checked >= 5
    finally:
        prometheus.stop()


def _database_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"

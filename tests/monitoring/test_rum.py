"""/monitoring/rum/ and static/js/rum.js."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from monitoring import instruments
from sigma_playground.telemetry.routes import page_route_names
from tests.monitoring.helpers import sample

URL = "/monitoring/rum/"
RUM_JS = Path(settings.BASE_DIR) / "static" / "js" / "rum.js"
ALLOWED_STATUSES = {204, 400, 405, 413, 415, 429}


def beacon(client: Client, payload, content_type: str = "text/plain;charset=UTF-8", **extra):
    body = payload if isinstance(payload, bytes | str) else json.dumps(payload)
    return client.post(URL, data=body, content_type=content_type, **extra)


def timing_count(route: str, metric: str) -> float:
    return sample("sigma_rum_timing_seconds_count", {"route": route, "metric": metric})


VALID = {
    "route": "workbooks:detail",
    "metrics": {"lcp": 1234.5, "inp": 48, "cls": 0.02, "ttfb": 95.1, "dcl": 402.7, "load": 640.3},
    "clicks": {"publish": 2},
    "submits": {"search": 1},
}


def test_a_valid_beacon_is_recorded_and_answered_204():
    client = Client(enforce_csrf_checks=True)  # a beacon carries no CSRF token
    before = {m: timing_count("workbooks:detail", m) for m in instruments.RUM_TIMINGS}
    cls_before = sample("sigma_rum_cls_count", {"route": "workbooks:detail"})
    lcp_sum_before = sample("sigma_rum_timing_seconds_sum", {"route": "workbooks:detail", "metric": "lcp"})
    clicks = {"route": "workbooks:detail", "type": "click", "target": "publish"}
    submits = {"route": "workbooks:detail", "type": "submit", "target": "search"}
    clicks_before = sample("sigma_rum_interactions_total", clicks)
    submits_before = sample("sigma_rum_interactions_total", submits)

    response = beacon(client, VALID)

    assert response.status_code == 204
    for metric in instruments.RUM_TIMINGS:
        assert timing_count("workbooks:detail", metric) == before[metric] + 1
    assert sample(
        "sigma_rum_timing_seconds_sum", {"route": "workbooks:detail", "metric": "lcp"}
    ) == pytest.approx(lcp_sum_before + 1.2345)
    assert sample("sigma_rum_cls_count", {"route": "workbooks:detail"}) == cls_before + 1
    assert sample("sigma_rum_interactions_total", clicks) == clicks_before + 2
    assert sample("sigma_rum_interactions_total", submits) == submits_before + 1


def test_application_json_is_accepted_too(client):
    assert (
        beacon(
            client, {"route": "home", "metrics": {"ttfb": 10}}, content_type="application/json"
        ).status_code
        == 204
    )


@pytest.mark.parametrize(
    "payload",
    [
        {"route": "/workbooks/12/", "metrics": {"lcp": 1}},  # a raw path, not a route name
        {"route": "admin:index", "metrics": {"lcp": 1}},  # admin pages don't load rum.js
        {"route": "home", "metrics": {"fid": 10}},  # FID is gone (INP replaced it)
        {"route": "home", "metrics": {"lcp": -1}},
        {"route": "home", "metrics": {"lcp": 120_001}},
        {"route": "home", "metrics": {"cls": 11}},
        {"route": "home", "metrics": {"lcp": "1200"}},
        {"route": "home", "metrics": {"lcp": True}},
        {"route": "home", "metrics": {"lcp": 10**400}},
        {"route": "home", "metrics": []},
        {"route": "home", "clicks": {"Buy now!": 1}},  # free text from the page
        {"route": "home", "clicks": {"publish": 0}},
        {"route": "home", "clicks": {"publish": 101}},
        {"route": "home", "clicks": {"publish": 1.5}},
        {"route": "home", "submits": ["search"]},
        {"route": "home", "user": "alice"},
        {"metrics": {"lcp": 1}},
        ["home"],
    ],
)
def test_anything_but_known_names_and_sane_values_is_refused_whole(client, payload):
    before = sample("sigma_rum_reports_total", {"result": "malformed"})
    assert beacon(client, payload).status_code == 400
    assert sample("sigma_rum_reports_total", {"result": "malformed"}) == before + 1


@pytest.mark.parametrize(
    "body", [b"", b"{", b"\xff\xfe", b'{"route": "home", "metrics": {"lcp": NaN}}', b"[" * 2000]
)
def test_unparsable_bodies_are_400(client, body):
    assert beacon(client, body).status_code == 400


def test_wrong_method_media_type_and_size(client):
    assert client.get(URL).status_code == 405
    assert beacon(client, VALID, content_type="multipart/form-data; boundary=x").status_code == 415
    huge = {"route": "home", "metrics": {"lcp": 1}, "pad": "x" * settings.RUM_MAX_BODY_BYTES}
    assert beacon(client, huge).status_code == 413


def test_rate_limited_per_client_without_flooding_the_log(client, settings, caplog):
    settings.RUM_RATE_LIMIT_PER_MINUTE = 3
    ok = {"route": "home", "metrics": {"ttfb": 12}}
    before = sample("sigma_rum_reports_total", {"result": "rate_limited"})
    statuses = [beacon(client, ok, REMOTE_ADDR="198.51.100.7").status_code for _ in range(5)]
    assert statuses == [204, 204, 204, 429, 429]
    assert beacon(client, ok, REMOTE_ADDR="198.51.100.8").status_code == 204
    assert sample("sigma_rum_reports_total", {"result": "rate_limited"}) == before + 2
    assert not [r for r in caplog.records if r.name == "django.request"]


def test_behind_a_proxy_the_client_is_the_address_the_proxy_appended(client, settings):
    settings.RUM_RATE_LIMIT_PER_MINUTE = 1
    settings.TRUSTED_PROXY_NETWORKS = ["127.0.0.0/8"]
    ok = {"route": "home", "metrics": {"ttfb": 12}}
    via_proxy = {"REMOTE_ADDR": "127.0.0.1"}
    assert beacon(client, ok, HTTP_X_FORWARDED_FOR="203.0.113.1", **via_proxy).status_code == 204
    assert beacon(client, ok, HTTP_X_FORWARDED_FOR="203.0.113.2", **via_proxy).status_code == 204
    # A client can't dodge the limit by inventing addresses left of the one the proxy appended.
    assert beacon(client, ok, HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.1", **via_proxy).status_code == 429


def test_without_a_trusted_proxy_a_rotating_forwarded_header_does_not_dodge_the_limit(client, settings):
    settings.RUM_RATE_LIMIT_PER_MINUTE = 1
    settings.TRUSTED_PROXY_NETWORKS = []
    ok = {"route": "home", "metrics": {"ttfb": 12}}
    direct = {"REMOTE_ADDR": "198.51.100.20"}
    assert beacon(client, ok, HTTP_X_FORWARDED_FOR="203.0.113.1", **direct).status_code == 204
    assert beacon(client, ok, HTTP_X_FORWARDED_FOR="203.0.113.2", **direct).status_code == 429


def test_with_the_cache_down_beacons_are_still_accepted(client, monkeypatch):
    from monitoring import rum

    def down(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(rum.cache, "add", down)
    assert beacon(client, {"route": "home", "metrics": {"ttfb": 12}}).status_code == 204


def test_an_unexpected_error_is_a_400_not_a_500(client, monkeypatch):
    from monitoring import rum

    def bug(report):
        raise KeyError("bug")

    monkeypatch.setattr(rum, "record", bug)
    assert beacon(client, VALID).status_code == 400


# --- Fuzzing ----------------------------------------------------------------------------------------------------

KNOWN_ROUTES = sorted(page_route_names())
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
names = st.sampled_from([*instruments.RUM_TIMINGS, "cls", "fid", "LCP", "", "__proto__"]) | st.text(
    max_size=12
)
targets = st.sampled_from([*settings.RUM_INTERACTION_NAMES, "other", "Buy now!"]) | st.text(max_size=12)
numbers = st.integers(min_value=-(10**20), max_value=10**20) | st.floats(allow_nan=True, allow_infinity=True)
near_valid = st.fixed_dictionaries(
    {"route": st.sampled_from([*KNOWN_ROUTES, "other", "admin:index", "/"]) | st.text(max_size=20)},
    optional={
        "metrics": st.dictionaries(names, numbers | json_values, max_size=8),
        "clicks": st.dictionaries(targets, st.integers(-5, 200) | json_values, max_size=10),
        "submits": st.dictionaries(targets, st.integers(-5, 200) | json_values, max_size=10),
        "extra": json_values,
    },
)
bodies = (
    st.binary(max_size=3000)
    | json_values.map(lambda v: json.dumps(v).encode())
    | near_valid.map(lambda v: json.dumps(v).encode())
)
content_types = st.sampled_from(
    ["text/plain;charset=UTF-8", "application/json", "text/html", "", "application/x-www-form-urlencoded"]
)


def rum_label_values() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    rum_metrics = (
        instruments.RUM_TIMING,
        instruments.RUM_CLS,
        instruments.RUM_INTERACTIONS,
        instruments.RUM_REPORTS,
    )
    for metric in rum_metrics:
        for family in metric.prom.collect():
            for s in family.samples:
                for key, value in s.labels.items():
                    if key != "le":
                        found.setdefault(key, set()).add(value)
    return found


@hsettings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies, content_type=content_types)
def test_fuzzed_beacons_never_500_and_never_add_a_label_value(settings, body, content_type):
    settings.RUM_RATE_LIMIT_PER_MINUTE = 10**9
    response = Client().post(URL, data=body, content_type=content_type)
    assert response.status_code in ALLOWED_STATUSES
    allowed = {
        "route": set(KNOWN_ROUTES) | {"other"},
        "metric": set(instruments.RUM_TIMINGS) | {"other"},
        "type": set(instruments.INTERACTION_TYPES) | {"other"},
        "target": set(settings.RUM_INTERACTION_NAMES) | {"other"},
        "result": set(instruments.RUM_REPORT_RESULTS) | {"other"},
    }
    for key, values in rum_label_values().items():
        assert values <= allowed[key], f"new {key} label values: {values - allowed[key]}"
    assert "other" not in rum_label_values().get("route", set())


# --- The script ---------------------------------------------------------------------------------------------------


def test_rum_js_is_small():
    raw = RUM_JS.read_bytes()
    assert len(gzip.compress(raw, compresslevel=9)) < 3 * 1024
    assert b"sendBeacon" in raw and b"largest-contentful-paint" in raw and b"interactionId" in raw
    assert b"first-input" in raw  # only to seed INP; no FID is reported
    assert b'"fid"' not in raw and b"fid:" not in raw


@pytest.mark.django_db
@pytest.mark.parametrize("url,route", [("/", "home"), ("/workbooks/", "workbooks:list")])
def test_pages_load_rum_js_deferred_with_their_route_and_no_inline_script(client, url, route):
    response = client.get(url)
    html = response.content.decode()
    tags = re.findall(r"<script\b[^>]*>", html)
    assert tags, "no script tag"
    for tag in tags:
        assert 'src="' in tag, f"inline script: {tag}"
    rum_tag = next(tag for tag in tags if "js/rum.js" in tag)
    assert " defer" in rum_tag
    assert f'data-route="{route}"' in rum_tag
    assert 'data-endpoint="/monitoring/rum/"' in rum_tag
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert 'data-rum="search"' in html


def test_the_interaction_names_in_the_templates_are_all_allowed():
    """A name missing from RUM_INTERACTION_NAMES would be counted as "other"."""
    used = set()
    for template in (Path(settings.BASE_DIR) / "templates").rglob("*.html"):
        used |= set(re.findall(r'data-rum="([^"]+)"', template.read_text()))
    assert {"search", "favorite", "unfavorite", "follow", "unfollow", "load_more"} <= used
    assert used <= set(settings.RUM_INTERACTION_NAMES), used - set(settings.RUM_INTERACTION_NAMES)

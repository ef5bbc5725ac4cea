"""The load test's scenarios: what one arrival (a new visitor) does, once, over the site's real HTML forms.

Each arrival is a fresh Locust ``FastHttpUser`` (its own cookie jar and connection): it runs its scenario's
``flow`` once and is gone, as in the design's open model. Every request carries the arrival's phase in its
Locust context, so the report can judge phase by phase; success is decided here per request (expected
status, CSRF token found), and a timeout or a refused connection is an error like any other.

- ``design``: the design document's flow (log in, list workbooks, publish one), through the login form and
  the new-workbook form with their CSRF tokens. Load-test users (``manage.py loadtest_users``) log in with
  the known password; what they publish is titled "Load Test Workbook …" and removed by
  ``manage.py loadtest_cleanup`` (``--drafts``: saved as drafts, never public).
- ``anonymous``: a visitor without an account reading three pages, each drawn by ``ANONYMOUS_WEIGHTS``
  (detail pages most, then lists in each sort, home, tags, profiles, search).
- ``logged_in``: a member logging in and reading four pages (``LOGGED_IN_WEIGHTS``: personal pages included).
- ``mixed``: each arrival is one of the three above, drawn by ``Options.mix`` (default
  ``settings.LOAD_TEST["mix"]``, the gallery's mix of docs/scaling.md): the traffic the scaling model predicts.
- ``hello``: one GET of ``/`` (point it at bench/hello_wsgi.py for the same tool's ceiling).
"""

from __future__ import annotations

import random
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import gevent
from locust import FastHttpUser

from loadtest.mix import ANONYMOUS_WEIGHTS, LOGGED_IN_WEIGHTS, SEARCH_WORDS, SORTS, Catalogue, pick_flow

CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@dataclass
class Options:
    users: int = 1000  # load-test accounts loadtest-00000 … to log in as
    password: str = ""
    drafts: bool = False
    catalogue: Catalogue = field(default_factory=Catalogue)
    mix: dict[str, float] = field(
        default_factory=dict
    )  # the `mixed` scenario's; python -m loadtest passes one


class Visitor(FastHttpUser):
    """One arrival. Not run by Locust's own runner: the open-model driver (loadtest/driver.py) creates one
    per arrival and calls ``flow`` once."""

    abstract = True
    host = "http://127.0.0.1:8000"
    route_prefix = ""  # before each route name in the report (the mixed scenario names the flow)
    max_retries = 0
    insecure = True
    concurrency = 1

    def __init__(self, environment, *, phase: str, arrival: int, options: Options, rng: random.Random):
        super().__init__(environment)
        self.phase, self.arrival, self.options, self.rng = phase, arrival, options, rng

    def context(self) -> dict:
        return {"phase": self.phase, "arrival": self.arrival}

    def flow(self) -> bool:
        """The scenario; True when every request of it succeeded."""
        raise NotImplementedError

    # --- requests ----------------------------------------------------------------------------------------

    def fetch(
        self,
        name: str,
        path: str,
        *,
        method: str = "GET",
        data: dict | None = None,
        expect: tuple[int, ...] = (200,),
        check: Callable[[str], bool] | None = None,
    ) -> str | None:
        """One request named ``name`` in the report; its body when it succeeded, else None.

        The client gives up after ``network_timeout`` seconds in all (a hard gevent timeout around the whole
        request: the socket timeouts alone bound each wait, not their sum), and that is an error sample with
        the time waited."""
        name = self.route_prefix + name
        headers = {"Referer": self.host + path} if method == "POST" else None
        started, started_at = time.perf_counter(), time.time()
        try:
            with gevent.Timeout(self.network_timeout):
                return self._fetch(name, path, method, data, headers, expect, check)
        except gevent.Timeout:
            self.environment.events.request.fire(
                request_type=method,
                name=name,
                response_time=(time.perf_counter() - started) * 1000,
                response_length=0,
                response=None,
                context=self.context(),
                exception=TimeoutError(f"no complete response within {self.network_timeout:g} s"),
                start_time=started_at,
                url=path,
            )
            return None

    def _fetch(self, name, path, method, data, headers, expect, check) -> str | None:
        with self.client.request(
            method, path, name=name, data=data, headers=headers, allow_redirects=False, catch_response=True
        ) as response:
            if response.status_code == 0:  # no response: connection refused, reset, socket timeout
                error = getattr(response, "error", None)
                response.failure(f"{type(error).__name__}: {error}" if error else "no response")
                return None
            if response.status_code not in expect:
                response.failure(f"status {response.status_code}")
                return None
            text = response.text or ""
            if check is not None and not check(text):
                response.failure("unexpected page")
                return None
            response.success()
            return text

    def csrf_form(self, name: str, path: str) -> str | None:
        html = self.fetch(name, path, check=lambda text: CSRF_RE.search(text) is not None)
        found = CSRF_RE.search(html or "")
        return found.group(1) if found else None

    def login(self) -> bool:
        token = self.csrf_form("login form", "/accounts/login/")
        if token is None:
            return False
        from accounts import loadtest

        username = loadtest.username(self.rng.randrange(max(1, self.options.users)))
        return (
            self.fetch(
                "login",
                "/accounts/login/",
                method="POST",
                data={
                    "csrfmiddlewaretoken": token,
                    "username": username,
                    "password": self.options.password or loadtest.PASSWORD,
                },
                expect=(302,),
            )
            is not None
        )

    def browse(self, weights: dict[str, int]) -> bool:
        kind = self.rng.choices(list(weights), weights=list(weights.values()))[0]
        cat = self.options.catalogue
        if kind == "detail" and cat.details:
            return self.fetch("detail", self.rng.choice(cat.details)) is not None
        if kind == "tag" and cat.tags:
            return self.fetch("tag", self.rng.choice(cat.tags)) is not None
        if kind == "profile" and cat.profiles:
            return self.fetch("profile", self.rng.choice(cat.profiles)) is not None
        if kind == "search":
            return self.fetch("search", f"/workbooks/?q={self.rng.choice(SEARCH_WORDS)}") is not None
        if kind == "list":
            sort = self.rng.choice(SORTS)
            return self.fetch(f"list ?sort={sort}", f"/workbooks/?sort={sort}") is not None
        if kind == "feed":
            return self.fetch("feed", "/feed/") is not None
        if kind == "favorites":
            return self.fetch("favorites", "/favorites/") is not None
        return self.fetch("home", "/") is not None


class DesignFlow(Visitor):
    abstract = True

    def flow(self) -> bool:
        if not self.login():
            return False
        if self.fetch("list", "/workbooks/") is None:
            return False
        token = self.csrf_form("publish form", "/workbooks/new/")
        if token is None:
            return False
        suffix = secrets.token_hex(6)
        data = {
            "csrfmiddlewaretoken": token,
            "title": f"Load Test Workbook {suffix}",
            "description": "Generated during load test",
            "sigma_embed_url": f"https://app.sigmacomputing.com/embed/loadtest-{suffix}",
            "tags": "loadtest",
            "visibility": "public",
        }
        if not self.options.drafts:
            data["publish"] = "on"
        return self.fetch("publish", "/workbooks/new/", method="POST", data=data, expect=(302,)) is not None


class AnonymousBrowsing(Visitor):
    abstract = True

    def flow(self) -> bool:
        return all([self.browse(ANONYMOUS_WEIGHTS) for _ in range(3)])


class LoggedInBrowsing(Visitor):
    abstract = True

    def flow(self) -> bool:
        return self.login() and all([self.browse(LOGGED_IN_WEIGHTS) for _ in range(4)])


class Mixed(Visitor):
    abstract = True

    def flow(self) -> bool:
        flow = pick_flow(self.rng, self.options.mix)
        self.route_prefix = f"{flow}: "  # "anonymous: detail", "design: login"...: the report splits them
        return MIXABLE[flow].flow(self)


class Hello(Visitor):
    abstract = True

    def flow(self) -> bool:
        return self.fetch("hello", "/") is not None


MIXABLE: dict[str, type[Visitor]] = {
    "design": DesignFlow,
    "anonymous": AnonymousBrowsing,
    "logged_in": LoggedInBrowsing,
}
SCENARIOS: dict[str, type[Visitor]] = {**MIXABLE, "mixed": Mixed, "hello": Hello}

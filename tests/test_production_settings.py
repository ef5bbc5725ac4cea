"""Production mode, exercised in a separate process with the environment the README documents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROD_ENV = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "k" * 10 + "Zq8-vT3xW_pL2mN7sR4yB9cF6hJ1dG5aE0uK" + "i" * 10,
    "ALLOWED_HOSTS": "playground.example.com",
}


def run(args: list[str], env: dict[str, str], timeout: int = 60) -> subprocess.CompletedProcess:
    base = {
        k: v for k, v in os.environ.items() if k not in {"DJANGO_ENV", "SECRET_KEY", "ALLOWED_HOSTS", "DEBUG"}
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_check_deploy_is_clean_in_production_mode():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], PROD_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_ssl_redirect_stays_on_with_the_probe_paths_exempt():
    """What check --deploy passes with: the redirect on (security.W008 would fire without it), and the
    exemption limited to the scrape and probe paths."""
    probe = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.SECURE_SSL_REDIRECT, s.SECURE_REDIRECT_EXEMPT]))"
    )
    result = run(["-c", probe], {**PROD_ENV, "DJANGO_SETTINGS_MODULE": "sigma_playground.settings"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [True, ["^metrics$", "^healthz$", "^readyz$"]]
    off = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        {**PROD_ENV, "SECURE_SSL_REDIRECT": "0"},
    )
    assert off.returncode != 0 and "security.W008" in off.stdout + off.stderr


def test_a_missing_prometheus_multiproc_dir_is_created_by_any_command(tmp_path):
    missing = tmp_path / "not" / "there" / "prometheus"
    result = run(["manage.py", "check"], {"PROMETHEUS_MULTIPROC_DIR": str(missing)})
    assert result.returncode == 0, result.stderr
    assert missing.is_dir()


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS"])
def test_production_refuses_to_start_without_its_secrets(missing):
    env = {k: v for k, v in PROD_ENV.items() if k != missing}
    result = run(["manage.py", "check"], env)
    assert result.returncode != 0
    assert f"Production mode needs {missing}" in result.stderr


def test_production_refuses_debug():
    result = run(["manage.py", "check"], {**PROD_ENV, "DEBUG": "1"})
    assert result.returncode != 0
    assert "DEBUG cannot be on in production" in result.stderr


PROBE = """
import json, django
django.setup()
from django.test import Client
from django.test.utils import setup_test_environment
c = Client()
evil = c.get("/healthz", HTTP_HOST="evil.example", secure=True)
plain = c.get("/", HTTP_HOST="playground.example.com")
good = c.get("/healthz", HTTP_HOST="playground.example.com", secure=True)
# Prometheus and health probes talk plain HTTP to the app: exactly these paths are exempt from the redirect.
exempt = {p: c.get(p, HTTP_HOST="playground.example.com").status_code for p in ("/metrics", "/healthz", "/readyz")}
near = {p: c.get(p, HTTP_HOST="playground.example.com").status_code for p in ("/healthz/", "/metricsx", "/x/metrics")}
print(json.dumps({
    "evil": evil.status_code,
    "plain": [plain.status_code, plain.get("Location")],
    "exempt": exempt,
    "near": near,
    "good": good.status_code,
    "headers": {k: v for k, v in good.items()},
}))
"""


@pytest.fixture(scope="module")
def collected_static(tmp_path_factory) -> Path:
    """collectstatic as a deploy runs it: hashed names plus gzip and brotli copies."""
    root = tmp_path_factory.mktemp("static")
    result = run(["manage.py", "collectstatic", "--no-input", "-v0"], {**PROD_ENV, "STATIC_ROOT": str(root)})
    assert result.returncode == 0, result.stderr
    return root


def test_collectstatic_writes_hashed_compressed_files(collected_static):
    manifest = json.loads((collected_static / "staticfiles.json").read_text())
    hashed = manifest["paths"]["css/site.css"]
    assert hashed != "css/site.css" and hashed.startswith("css/site.")
    for suffix in ("", ".gz", ".br"):
        assert (collected_static / (hashed + suffix)).is_file(), hashed + suffix


STATIC_PROBE = """
import json, django
django.setup()
from django.test import Client
from django.templatetags.static import static
url = static("css/site.css")
r = Client().get(url, HTTP_HOST="playground.example.com", secure=True, HTTP_ACCEPT_ENCODING="br, gzip")
print(json.dumps([url, r.status_code, r.get("Cache-Control"), r.get("Content-Encoding")]))
"""


def test_hashed_static_files_are_served_immutable_and_compressed(collected_static):
    env = {
        **PROD_ENV,
        "DJANGO_SETTINGS_MODULE": "sigma_playground.settings",
        "STATIC_ROOT": str(collected_static),
    }
    result = run(["-c", STATIC_PROBE], env)
    assert result.returncode == 0, result.stderr
    url, status, cache_control, encoding = json.loads(result.stdout.strip().splitlines()[-1])
    assert url.startswith("/static/css/site.") and url != "/static/css/site.css"
    assert status == 200
    assert cache_control == "max-age=31536000, public, immutable"
    assert encoding == "br"


def test_production_headers_and_host_checking(collected_static):
    env = {
        **PROD_ENV,
        "DJANGO_SETTINGS_MODULE": "sigma_playground.settings",
        "STATIC_ROOT": str(collected_static),
    }
    result = run(["-c", PROBE], env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["evil"] == 400
    assert data["plain"] == [301, "https://playground.example.com/"]
    assert data["exempt"]["/metrics"] == 200 and data["exempt"]["/healthz"] == 200
    assert data["exempt"]["/readyz"] in (200, 503)  # answered (its checks may fail here), not redirected
    assert data["near"] == {"/healthz/": 301, "/metricsx": 301, "/x/metrics": 301}
    assert data["good"] == 200
    headers = {k.lower(): v for k, v in data["headers"].items()}
    assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["x-frame-options"] == "DENY"
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-src https://app.sigmacomputing.com" in csp


def test_production_cookies_are_secure_httponly_lax():
    probe = """
import django, json
django.setup()
from django.conf import settings as s
print(json.dumps([s.SESSION_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.SESSION_COOKIE_SAMESITE,
                  s.CSRF_COOKIE_SECURE, s.CSRF_COOKIE_HTTPONLY, s.CSRF_COOKIE_SAMESITE]))
"""
    result = run(["-c", probe], {**PROD_ENV, "DJANGO_SETTINGS_MODULE": "sigma_playground.settings"})
    assert json.loads(result.stdout) == [True, True, "Lax", True, True, "Lax"]


def test_insecure_cookies_for_a_load_test_are_refused_for_a_real_host():
    result = run(["manage.py", "check"], {**PROD_ENV, "LOADTEST_INSECURE_COOKIES": "1"})
    assert result.returncode != 0
    assert "LOADTEST_INSECURE_COOKIES is for a load test on loopback only" in result.stderr


def test_insecure_cookies_for_a_load_test_on_loopback_only():
    code = "from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE)"
    env = {
        **PROD_ENV,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOADTEST_INSECURE_COOKIES": "1",
        "DJANGO_SETTINGS_MODULE": "sigma_playground.settings",
    }
    result = run(["-c", "import django; django.setup(); " + code], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
    result = run(["-c", "import django; django.setup(); " + code], PROD_ENV)
    assert result.stdout.split() == ["True", "True"]  # and never without the setting

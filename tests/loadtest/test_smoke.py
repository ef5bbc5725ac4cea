"""A 10-second run of `python -m loadtest` against a gunicorn this test starts in production mode over plain
http on loopback (LOADTEST_INSECURE_COOKIES), then the cleanup: the whole feature, end to end."""

import os
import re
import subprocess
import sys

import pytest
from django.core.management import call_command

from accounts import loadtest
from tests.factories import WorkbookFactory
from tests.monitoring.helpers import ROOT, gunicorn_serving, services_env
from workbooks.models import Workbook

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


def production_env(tmp_path, settings) -> dict[str, str]:
    static = tmp_path / "static"
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"],
        cwd=ROOT,
        env={**os.environ, "STATIC_ROOT": str(static)},
        check=True,
        timeout=300,
    )
    return {
        **services_env(redis_url=settings.REDIS_URL, metrics_dir=tmp_path / "metrics"),
        "DJANGO_ENV": "production",
        "DEBUG": "0",
        "SECRET_KEY": "loadtest-smoke-" + "k" * 40 + "Zq8-vT3xW_pL2mN7sR4yB9c",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOADTEST_INSECURE_COOKIES": "1",
        "SECURE_SSL_REDIRECT": "0",
        "STATIC_ROOT": str(static),
        "MEDIA_ROOT": str(tmp_path / "media"),
        "PRIVATE_MEDIA_ROOT": str(tmp_path / "private"),
    }


def test_a_ten_second_run_reports_per_phase_and_route_and_cleans_up(tmp_path, settings):
    from sigma_playground import settings as project_settings

    settings.PASSWORD_HASHERS = project_settings.PASSWORD_HASHERS  # gunicorn verifies with these, not MD5
    loadtest.create_users(count=5)
    for _ in range(6):
        WorkbookFactory()
    docs = tmp_path / "performance.md"
    docs.write_text("# Performance\n")
    env = production_env(tmp_path, settings)
    with gunicorn_serving(env) as (base, _):
        result = subprocess.run(
            [
                sys.executable, "-m", "loadtest", "--base-url", base, "--scenario", "design,anonymous,logged_in",
                "--phases", "smoke:10:1", "--users", "5", "--seed", "1", "--timeout", "10",
                "--report-dir", str(tmp_path / "reports"), "--append-docs", str(docs),
            ],
            cwd=ROOT,
            env={**os.environ, **{k: v for k, v in env.items() if k in {"DATABASE_URL", "REDIS_URL"}}},
            capture_output=True,
            text=True,
            timeout=240,
        )  # fmt: skip
    out = result.stdout
    print(out, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    verdicts = re.findall(r"Verdict \(SLA per phase\): (PASS|FAIL)", out)
    assert len(verdicts) == 3
    assert result.returncode == (0 if verdicts == ["PASS"] * 3 else 1)  # non-zero exactly when one fails
    for route in ("login form", "login", "list", "publish form", "publish", "detail"):
        assert re.search(rf"^\| smoke \| {re.escape(route)} \| [1-9]", out, re.M), f"no {route} requests"
    # The design flow completed at least once through the real forms, CSRF and session cookies included.
    design = re.search(r"^\| smoke \| \d+ \| 1 \| ([\d.]+) \| ([\d.]+) \|", out, re.M)
    assert design and float(design.group(2)) > 0, out
    assert Workbook.objects.filter(
        author__in=loadtest.users(), title__startswith="Load Test Workbook"
    ).exists()
    reports = list((tmp_path / "reports").glob("loadtest-*.html"))
    assert len(reports) == 3 and all(r.read_text().count("<svg") == 3 for r in reports)
    assert docs.read_text().count("### Load test:") == 3

    call_command("loadtest_cleanup")
    assert not Workbook.objects.filter(author__in=loadtest.users()).exists()
    assert Workbook.objects.count() == 6

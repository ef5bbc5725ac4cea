"""The profiler: context manager and decorator into histograms and a debug line; ?profile=1 for staff only."""

from __future__ import annotations

import base64
import hashlib
import logging
import re

import pytest

from monitoring.profiling import profile, profiled
from tests.monitoring.helpers import sample


def burn_cpu(n: int = 200_000) -> int:
    return sum(i * i for i in range(n))


def test_the_context_manager_records_duration_cpu_and_memory(caplog):
    count_before = sample("sigma_profile_duration_seconds_count", {"name": "test.block"})
    user_before = sample("sigma_profile_cpu_seconds_count", {"name": "test.block", "mode": "user"})
    with caplog.at_level(logging.DEBUG, logger="monitoring.profiling"), profile("test.block") as result:
        burn_cpu()
        ballast = bytearray(32 * 2**20)
        ballast[::4096] = b"x" * len(ballast[::4096])  # touch the pages so they count as resident
    assert result.duration_s > 0 and result.cpu_user_s + result.cpu_system_s > 0
    assert result.memory_delta_bytes > 16 * 2**20
    assert sample("sigma_profile_duration_seconds_count", {"name": "test.block"}) == count_before + 1
    assert (
        sample("sigma_profile_cpu_seconds_count", {"name": "test.block", "mode": "user"}) == user_before + 1
    )
    assert sample("sigma_profile_memory_delta_bytes_count", {"name": "test.block"}) >= 1
    record = next(r for r in caplog.records if r.name == "monitoring.profiling")
    assert record.levelno == logging.DEBUG
    assert re.match(
        r"profile test\.block: [\d.]+ ms wall, [\d.]+ ms user, [\d.]+ ms system, \+\d+ KiB RSS",
        record.getMessage(),
    )
    assert record.profile == "test.block" and record.duration_ms > 0
    del ballast


def test_the_context_manager_records_a_block_that_raises():
    before = sample("sigma_profile_duration_seconds_count", {"name": "test.raises"})
    with pytest.raises(ValueError), profile("test.raises"):
        raise ValueError("boom")
    assert sample("sigma_profile_duration_seconds_count", {"name": "test.raises"}) == before + 1


def test_the_decorator_names_sections_after_the_function():
    @profiled()
    def compute(n):
        return burn_cpu(n)

    @profiled("test.named")
    def named():
        return 1

    assert compute(1000) == burn_cpu(1000) and compute.__name__ == "compute"
    assert named() == 1
    assert sample("sigma_profile_duration_seconds_count", {"name": "test.named"}) >= 1
    # "<locals>" can't be a label value: a section name that isn't a plain dotted name folds into "other".
    assert sample("sigma_profile_duration_seconds_count", {"name": "other"}) >= 1


# --- ?profile=1 ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_staff_get_a_profile_of_the_request_allowed_by_csp_hashes(client, staff_user):
    client.force_login(staff_user)
    response = client.get("/workbooks/?profile=1")
    assert response.status_code == 200
    html = response.content.decode()
    assert "pyinstrument" in html.lower() and "workbook_list" in html
    assert response["X-Profiled-Status"] == "200"
    assert response["Cache-Control"] == "no-store"
    csp = response["Content-Security-Policy"]
    assert "unsafe-inline" not in csp
    for body in re.findall(r"<script>(.*?)</script>", html, re.S):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["anonymous", "user", "inactive staff"])
def test_for_anyone_else_the_parameter_does_nothing(client, user, staff_user, who):
    if who == "user":
        client.force_login(user)
    elif who == "inactive staff":
        client.force_login(staff_user)
        staff_user.is_active = False
        staff_user.save()
    plain = client.get("/workbooks/")
    profiled_attempt = client.get("/workbooks/?profile=1")
    assert profiled_attempt.status_code == plain.status_code
    assert "X-Profiled-Status" not in profiled_attempt
    assert "pyinstrument" not in profiled_attempt.content.decode().lower()
    assert profiled_attempt["Content-Security-Policy"] == plain["Content-Security-Policy"]


@pytest.mark.django_db
def test_other_values_of_the_parameter_do_nothing_even_for_staff(client, staff_user):
    client.force_login(staff_user)
    response = client.get("/workbooks/?profile=yes")
    assert "X-Profiled-Status" not in response

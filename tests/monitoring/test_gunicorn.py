"""deploy/gunicorn.conf.py for real: several workers, one merged /metrics, a clean start, dead workers dropped."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.error

import psutil
import pytest

from tests.monitoring.helpers import fetch, gunicorn_serving, scrape

PAGE = "/no/such/page/"  # a 404, needing no database (probes and scrapes record no request metrics)


def page_count(text: str) -> float:
    samples = scrape(text).get("django_http_responses_total_by_status_view_method_total", [])
    return sum(s.value for s in samples if s.labels.get("status") == "404")


def get(url: str) -> None:
    try:
        fetch(url)
    except urllib.error.HTTPError as exc:
        assert exc.code == 404


@pytest.fixture
def gunicorn(tmp_path):
    metrics_dir = tmp_path / "prometheus-web"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left by an earlier run")
    env = {
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
    }
    with gunicorn_serving(env) as (base, process):
        yield base, metrics_dir, process


def workers_of(process: subprocess.Popen) -> list[psutil.Process]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        children = psutil.Process(process.pid).children()
        if len(children) == 2:
            return children
        time.sleep(0.1)
    raise AssertionError("gunicorn did not run 2 workers")


@pytest.mark.slow
def test_metrics_are_merged_across_workers_and_the_directory_starts_clean(gunicorn):
    base, metrics_dir, process = gunicorn
    assert not (metrics_dir / "counter_999999.db").exists()
    workers = workers_of(process)
    for _ in range(30):
        get(base + PAGE)
    # Whichever worker answers the scrape, it reports all 30.
    for _ in range(6):
        assert page_count(fetch(base + "/metrics")) == 30
    served = {int(p.name.rsplit("_", 1)[-1].removesuffix(".db")) for p in metrics_dir.glob("counter_*.db")}
    assert served <= {w.pid for w in workers} and served


@pytest.mark.slow
def test_a_dead_workers_live_gauges_are_dropped_and_its_counts_kept(gunicorn):
    base, metrics_dir, process = gunicorn
    for _ in range(10):
        get(base + PAGE)
    victim = workers_of(process)[0]
    assert (metrics_dir / f"gauge_livesum_{victim.pid}.db").exists()
    victim.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 20
    while (metrics_dir / f"gauge_livesum_{victim.pid}.db").exists():
        assert time.monotonic() < deadline, "child_exit did not mark the worker dead"
        time.sleep(0.1)
    workers_of(process)  # gunicorn replaced it
    # With reuse_port the replacement listens as soon as it is forked: a connection the kernel hands it
    # waits for it to finish booting (seconds on a busy machine), so this scrape may wait too.
    assert page_count(fetch(base + "/metrics", timeout=60)) == 10


@pytest.mark.slow
def test_each_instance_has_its_own_control_socket(gunicorn):
    """gunicorn's default control socket is one path per user, shared by every instance on the host; the
    config puts it in the instance's own metrics directory."""
    base, metrics_dir, _ = gunicorn
    socket_path = metrics_dir / "gunicorn.ctl"
    deadline = time.monotonic() + 20
    while not socket_path.is_socket():
        assert time.monotonic() < deadline, f"no control socket at {socket_path}"
        time.sleep(0.1)
    assert page_count(fetch(base + "/metrics")) == 0  # the socket is not a metrics file

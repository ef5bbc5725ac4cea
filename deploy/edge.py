"""The edge for real: nginx and Varnish configured from deploy/nginx/nginx.conf and deploy/varnish/default.vcl,
run as ordinary processes from a run folder (no root-owned system path is written, any free port).

Used by `make stack` (deploy/stack.py), the edge tests (tests/edge) and `make bench-web`. Standard library
only: nothing here imports Django.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NGINX_TEMPLATE = ROOT / "deploy" / "nginx" / "nginx.conf"
VCL_TEMPLATE = ROOT / "deploy" / "varnish" / "default.vcl"
# Debian's libnginx-mod-http-brotli-filter (see /usr/share/nginx/modules-available/mod-http-brotli-filter.conf).
BROTLI_MODULE = "/usr/lib/nginx/modules/ngx_http_brotli_filter_module.so"
NGINX = "/usr/sbin/nginx"
VARNISHD = "/usr/sbin/varnishd"
DEBIAN_PACKAGES = ("nginx", "libnginx-mod-http-brotli-filter", "varnish", "varnish-modules")


def missing_packages() -> list[str]:
    """Debian packages the edge needs that are not installed."""
    missing = []
    if not os.access(NGINX, os.X_OK):
        missing.append("nginx")
    if not os.path.exists(BROTLI_MODULE):
        missing.append("libnginx-mod-http-brotli-filter")
    if not os.access(VARNISHD, os.X_OK):
        missing.append("varnish")
    if not list(Path("/usr/lib").glob("*/varnish/vmods/libvmod_xkey.so")):
        missing.append("varnish-modules")
    return missing


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports, below the kernel's ephemeral range: a port from
    ``free_port`` is in that range, where an outgoing connection may take the next one before a server that
    starts a minute later binds it (a replica after its primary's seeding, a second gunicorn)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.SystemRandom()
    for _ in range(200):
        first = rng.randrange(10_000, low - count)
        if all(_bindable(first + i) for i in range(count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports below {low}")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def fill(template: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        template = template.replace(f"@@{name}@@", value)
    if "@@" in template:
        start = template.index("@@")
        raise ValueError(f"unfilled placeholder near {template[start : start + 40]!r}")
    return template


def default_max_in_flight(cores: int | None = None, instances: int = 1) -> int:
    """Costly requests in flight per web instance for nginx's admission control: 1.5 per core of the
    machine, shared by the instances on it, at least 2.

    Measured with the goals run's overload step (`python -m loadtest --goals --with-stack --only overload
    --sustainable-rate 10`: the design flow at twice what this 2-core machine sustains, 2026-11-29 16:58 to
    17:05 UTC, docs/performance.md): 12 in flight gave 75.0 % of responses within the SLA or a 503 in under
    50 ms, 4 gave 98.3 % and 3 gave 100.0 % (1 slow success in 3,212), with more requests served than at 4
    (2,586 against 1,559): past about 1.5 per core, requests only wait for each other on the CPU."""
    cores = cores or os.cpu_count() or 1
    return max(2, round(1.5 * cores / max(1, instances)))


def render_nginx(
    *,
    run_dir: Path,
    listen_port: int,
    upstream: str | Sequence[str],
    static_root: Path,
    media_root: Path,
    cdn_addresses: Iterable[str] = ("127.0.0.1",),
    client_max_body_size: int = 6 * 1024 * 1024,
    static_max_age: int = 3600,
    media_max_age: int = 30 * 24 * 3600,
    workers: int | str = "auto",
    access_log: bool = True,
    forwarded_proto: str = "$scheme",
    origin_max_in_flight: int = 0,
    retry_after: int = 2,
    session_cookie: str = "sessionid",
) -> str:
    """nginx.conf for a server on 127.0.0.1:``listen_port`` in front of ``upstream``: one host:port, or several
    (web instances: nginx spreads requests over them, round robin on its keep-alive connections).

    ``origin_max_in_flight``: costly requests (anything but an anonymous GET or HEAD, i.e. without the
    ``session_cookie``) each instance answers at once before nginx answers 503; 0 (nginx's "no limit") leaves
    overload to the site's queue-time shedding. Anonymous reads are never limited here: mostly page-cache
    hits of a fraction of a millisecond, and a concurrency limit refuses a cheap request as readily as a
    costly one (12 in flight refused 93 % of 32 clients' cached pages in `make bench-web`, 2026-11-29).
    :func:`default_max_in_flight` is the measured choice for a machine's cores.
    ``retry_after``: that 503's Retry-After (the site's OVERLOAD_RETRY_AFTER_SECONDS)."""
    servers = [upstream] if isinstance(upstream, str) else list(upstream)
    return fill(
        NGINX_TEMPLATE.read_text(),
        {
            "BROTLI_MODULE": BROTLI_MODULE,
            # Started by root (CI containers), nginx would run its workers as "nobody", who cannot read a
            # run folder or STATIC_ROOT under root's temporary directory; as any other user this line is
            # not written. A production server uses Debian's own nginx.conf user (www-data).
            "USER": "user root root;\n" if os.geteuid() == 0 else "",
            "WORKERS": str(workers),
            "RUN_DIR": str(run_dir),
            "ACCESS_LOG": f"{run_dir}/nginx-access.log edge" if access_log else "off",
            "CLIENT_MAX_BODY_SIZE": str(client_max_body_size),
            "REAL_IP_FROM": "\n".join(f"    set_real_ip_from {a};" for a in cdn_addresses),
            "UPSTREAM_SERVERS": "\n".join(
                f"        server {server} max_fails=0 max_conns={origin_max_in_flight};" for server in servers
            ),
            "READ_SERVERS": "\n".join(f"        server {server} max_fails=0;" for server in servers),
            "PROBE_SERVERS": "\n".join(f"        server {server} max_fails=0;" for server in servers),
            "SESSION_COOKIE": session_cookie,
            "STATIC_MAX_AGE": str(static_max_age),
            "LISTEN": f"127.0.0.1:{listen_port}",
            "FORWARDED_PROTO": forwarded_proto,
            "STATIC_ROOT": str(static_root).rstrip("/"),
            "MEDIA_ROOT": str(media_root).rstrip("/"),
            "MEDIA_MAX_AGE": str(media_max_age),
            "RETRY_AFTER": str(retry_after),
        },
    )


def render_vcl(
    *,
    origin_host: str,
    origin_port: int,
    purgers: Iterable[str] = ("127.0.0.1", "::1"),
    session_cookies: Iterable[str] = ("sessionid", "messages"),
) -> str:
    return fill(
        VCL_TEMPLATE.read_text(),
        {
            "ORIGIN_HOST": origin_host,
            "ORIGIN_PORT": str(origin_port),
            "PURGERS": "\n".join(f'    "{p}";' for p in purgers),
            "SESSION_COOKIES": "|".join(session_cookies),
        },
    )


def wait_for_port(port: int, process: subprocess.Popen, what: str, *, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} is not listening on {port} after {seconds:.0f} s") from None
            time.sleep(0.1)


@dataclass
class Server:
    """A server process started here, stopped by its pid."""

    name: str
    port: int
    process: subprocess.Popen
    run_dir: Path
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, *, timeout: float = 15) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_nginx(run_dir: Path, *, port: int | None = None, **render: object) -> Server:
    """nginx in the foreground (``daemon off``) with its config, pid, logs and temp files in ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (run_dir / sub).mkdir(exist_ok=True)
    port = port or free_port()
    conf = run_dir / "nginx.conf"
    conf.write_text(render_nginx(run_dir=run_dir, listen_port=port, **render))  # type: ignore[arg-type]
    log_path = run_dir / "nginx-error.log"
    check = subprocess.run(  # noqa: S603 (fixed argv)
        [NGINX, "-t", "-q", "-p", str(run_dir), "-c", str(conf), "-g", "daemon off;"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t refused {conf}:\n{check.stderr}")
    process = subprocess.Popen(  # noqa: S603 (fixed argv)
        [NGINX, "-p", str(run_dir), "-c", str(conf), "-g", "daemon off;"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=(run_dir / "nginx-stderr.log").open("wb"),
        start_new_session=True,
    )
    server = Server("nginx", port, process, run_dir, log_path)
    try:
        wait_for_port(port, process, "nginx")
    except RuntimeError as exc:
        server.stop()
        raise RuntimeError(f"{exc}\n{server.log_tail()}") from None
    return server


def start_varnish(
    run_dir: Path,
    *,
    origin_port: int,
    port: int | None = None,
    origin_host: str = "127.0.0.1",
    storage: str = "malloc,256m",
    threads: tuple[int, int] = (50, 1000),
    **render: object,
) -> Server:
    """varnishd in the foreground (``-F``) with its working directory (``-n``) in ``run_dir``.

    As root, ``-j none`` keeps it from switching to the varnish user (which could not read a run folder
    under /tmp/… of root); ``-p http_gzip_support=off`` leaves compression to nginx (the VCL keeps a brotli,
    a gzip and an identity copy)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    vcl = run_dir / "default.vcl"
    vcl.write_text(render_vcl(origin_host=origin_host, origin_port=origin_port, **render))  # type: ignore[arg-type]
    work = run_dir / "varnish"
    work.mkdir(exist_ok=True)
    admin_port = free_port()
    log_path = run_dir / "varnishd.log"
    jail = ["-j", "none"] if os.geteuid() == 0 else []
    process = subprocess.Popen(  # noqa: S603 (fixed argv)
        [
            VARNISHD,
            "-F",
            *jail,
            "-n",
            str(work),
            "-a",
            f"127.0.0.1:{port}",
            "-T",
            f"127.0.0.1:{admin_port}",
            "-f",
            str(vcl),
            "-s",
            storage,
            "-p",
            "http_gzip_support=off",
            "-p",
            f"thread_pool_min={threads[0]}",
            "-p",
            f"thread_pool_max={threads[1]}",
            "-p",
            "thread_pools=1",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server("varnish", port, process, run_dir, log_path, extra={"workdir": str(work)})
    try:
        wait_for_port(port, process, "varnishd", seconds=60)
    except RuntimeError as exc:
        server.stop()
        raise RuntimeError(f"{exc}\n{server.log_tail()}") from None
    return server


def varnish_ban_all(server: Server) -> None:
    """Empty the cache (tests, between cases)."""
    subprocess.run(  # noqa: S603 (fixed argv)
        ["/usr/bin/varnishadm", "-n", server.extra["workdir"], "ban", "req.url", "~", "."],
        check=True,
        capture_output=True,
        timeout=30,
    )


def http_get(
    url: str, *, headers: dict[str, str] | None = None, method: str = "GET", timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    """One request without redirects or decompression: (status, headers with lower-case names, body)."""

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers=headers or {}, method=method)  # noqa: S310 (our URLs)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, _merged(response.headers.items()), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, _merged(exc.headers.items()), exc.read()


def _merged(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers by lower-case name; repeated headers (two Vary lines) joined with ", "."""
    merged: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


def which(name: str) -> str | None:
    return shutil.which(name)

"""``python -m loadtest``: the design's load test (phases in ``settings.LOAD_TEST``) against any base URL.

    python -m loadtest --base-url http://127.0.0.1:8000 --scenario design,anonymous,logged_in \\
        --time-scale 0.2 --report-dir .run/loadtest --append-docs docs/performance.md

Prints progress per phase, then the figures per phase and per route and the SLA verdict per phase; writes an
HTML report with charts per scenario; appends the figures to docs/performance.md with ``--append-docs``; exits
1 when any scenario's verdict fails. ``--phases "name:seconds:rate,..."`` replaces the design's phases
(``--rate-scale`` multiplies their rates). The users must exist (``manage.py loadtest_users``); what the run
creates is removed by ``manage.py loadtest_cleanup`` (``make loadtest`` runs both).

``--goals`` measures and judges every goal of issue 15 instead (loadtest/goals_run.py, ``make loadtest-goals``).
"""

# ruff: isort: skip_file
from __future__ import annotations

import locust  # noqa: F401  # first: importing Locust monkey-patches the standard library for gevent

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import django


def parse_phases(text: str) -> list:
    from loadtest.samples import Phase

    phases = []
    for part in text.split(","):
        name, seconds, rate = part.rsplit(":", 2)
        phases.append(Phase(name.strip(), float(seconds), float(rate)))
    return phases


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sigma_playground.settings")
    django.setup()
    from django.conf import settings

    from loadtest import driver, mix, report
    from loadtest.samples import Phase
    from loadtest.scenarios import SCENARIOS, Options

    config = settings.LOAD_TEST
    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", default=os.environ.get("LOADTEST_BASE_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--scenario", default="design", help=f"comma-separated: {', '.join(SCENARIOS)}")
    parser.add_argument("--time-scale", type=float, default=config["time_scale"])
    parser.add_argument("--rate-scale", type=float, default=1.0)
    parser.add_argument("--phases", help='"name:seconds:arrivals_per_s,..." instead of settings.LOAD_TEST')
    parser.add_argument("--users", type=int, default=1000, help="load-test accounts to log in as")
    parser.add_argument("--drafts", action="store_true", help="the design flow saves drafts, never public")
    parser.add_argument(
        "--mix",
        type=mix.parse_mix,
        default=dict(config["mix"]),
        help='the mixed scenario\'s weights, "anonymous:90,logged_in:8,design:2" (default settings.LOAD_TEST["mix"])',
    )
    parser.add_argument("--timeout", type=float, default=config["request_timeout_s"])
    parser.add_argument("--max-in-flight", type=int, default=config["max_in_flight"])
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--server-pids",
        type=int,
        nargs="*",
        default=[],
        help="more process trees to count as the server (the base URL's listener always is)",
    )
    parser.add_argument("--report-dir", type=Path, default=Path(".run/loadtest"))
    parser.add_argument("--append-docs", type=Path)
    goals = parser.add_argument_group("goals run (issue 15, section 6; loadtest/goals_run.py)")
    goals.add_argument("--goals", action="store_true", help="measure and judge every goal instead of phases")
    goals.add_argument("--with-stack", action="store_true", help="start make stack (deploy/stack.py) first")
    goals.add_argument("--nginx-url", default=os.environ.get("LOADTEST_NGINX_URL", "http://127.0.0.1:8081"))
    goals.add_argument(
        "--gunicorn-url", default=os.environ.get("LOADTEST_GUNICORN_URL", "http://127.0.0.1:8082")
    )
    goals.add_argument(
        "--database", help="bench-web's PostgreSQL database for uncached pages (default: DATABASE_URL's)"
    )
    goals.add_argument(
        "--redis-db", type=int, help="bench-web's Redis db and the next (default: REDIS_URL's)"
    )
    goals.add_argument(
        "--only", type=lambda text: [t.strip() for t in text.split(",") if t.strip()],
        help="comma-separated steps: ceilings, waves, cdn, design, logged_in, overload, uncached (default all)",
    )  # fmt: skip
    goals.add_argument(
        "--sustainable-rate", type=float,
        help="design arrivals/s the overload run doubles when the design step does not run (default: the goal's)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    command = "python -m loadtest " + shlex.join(argv if argv is not None else sys.argv[1:])
    if args.goals:
        from loadtest import goals_run

        unknown_steps = set(args.only or ()) - set(goals_run.STEPS)
        if unknown_steps:
            parser.error(
                f"unknown --only steps {sorted(unknown_steps)}; choose from {', '.join(goals_run.STEPS)}"
            )
        args.report_dir.mkdir(parents=True, exist_ok=True)
        return goals_run.main(args, command)

    if args.phases:
        phases = parse_phases(args.phases)
    else:
        phases = [Phase(p["name"], p["duration_s"], p["arrivals_per_s"]) for p in config["phases"]]
    phases = [
        Phase(p.name, p.duration_s * args.time_scale, p.arrivals_per_s * args.rate_scale) for p in phases
    ]
    names = [n.strip() for n in args.scenario.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        parser.error(f"unknown scenario {unknown}; choose from {', '.join(SCENARIOS)}")
    args.report_dir.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in names:
        total = sum(p.duration_s for p in phases)
        print(f"loadtest {name}: {len(phases)} phases, {total:.0f} s, against {args.base_url}", flush=True)
        run = driver.run(
            base_url=args.base_url,
            scenario=SCENARIOS[name],
            scenario_name=name,
            phases=phases,
            options=Options(users=args.users, drafts=args.drafts, mix=args.mix),
            timeout_s=args.timeout,
            max_in_flight=args.max_in_flight,
            seed=args.seed,
            server_pids=set(args.server_pids),
            progress=lambda line: print(line, flush=True),
        )
        summary = report.summarize(run)
        html_path = args.report_dir / f"loadtest-{name}-{time.strftime('%Y%m%d-%H%M%S')}.html"
        html_path.write_text(report.render_html(summary, run), encoding="utf-8")
        report.write_samples(html_path.with_suffix(".csv"), run)
        print(report.render_text(summary), flush=True)
        print(f"HTML report: {html_path} (raw samples: {html_path.with_suffix('.csv')})", flush=True)
        if args.append_docs:
            report.append_to_docs(args.append_docs, summary, command=command, html_path=html_path)
            print(f"appended to {args.append_docs}", flush=True)
        if not summary.passed:
            failed.append(name)
    if failed:
        print(f"loadtest: the SLA verdict failed for {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

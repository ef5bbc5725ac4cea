"""Lighthouse over the main pages, mobile and desktop: scores, CLS and first-load bytes, as a table.

Not a test: a measurement for docs/performance.md. Needs Lighthouse 12 (``npm i -E lighthouse@12.2.3`` in
a scratch folder; 13 wants Node 22) and Debian's chromium::

    CHROME_PATH=/usr/bin/chromium .venv/bin/python -m bench.lighthouse --base http://127.0.0.1:8000 \\
        --lighthouse /tmp/lh/node_modules/.bin/lighthouse --detail /workbooks/10/slug/ --profile /users/ana/

Each page is audited ``--runs`` times per form factor and the median performance run is reported (the
machine is shared: say the load average with the figures).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
CHROME_FLAGS = "--headless=new --no-sandbox --disable-gpu --no-first-run --disable-background-networking --disable-component-update --disable-sync"


def audit(lighthouse: str, url: str, form_factor: str, out: Path) -> dict:
    args = [
        lighthouse,
        url,
        "--quiet",
        "--output=json",
        f"--output-path={out}",
        f"--chrome-flags={CHROME_FLAGS}",
        f"--only-categories={','.join(CATEGORIES)}",
    ]
    if form_factor == "desktop":
        args.append("--preset=desktop")
    env = {**os.environ, "CHROME_PATH": os.environ.get("CHROME_PATH", "/usr/bin/chromium")}
    for attempt in range(3):  # on a loaded machine Chrome sometimes fails to start in time: try again
        done = subprocess.run(args, env=env, timeout=300, capture_output=True)  # noqa: S603 (our arguments)
        if done.returncode == 0:
            break
        print(f"  lighthouse failed on {url} ({form_factor}), attempt {attempt + 1}", file=sys.stderr)
    done.check_returncode()
    report = json.loads(out.read_text())
    audits = report["audits"]
    failing = sorted(
        key
        for cat in CATEGORIES[1:]
        for ref in report["categories"][cat]["auditRefs"]
        if ref["weight"] > 0
        and (key := ref["id"])
        and audits[key].get("score") is not None
        and audits[key]["score"] < 1
    )
    return {
        "scores": {c: round((report["categories"][c]["score"] or 0) * 100) for c in CATEGORIES},
        "cls": audits["cumulative-layout-shift"]["numericValue"],
        "bytes": audits["total-byte-weight"]["numericValue"],
        "requests": len(audits["network-requests"]["details"]["items"]),
        "failing": failing,
        "console_errors": len(audits["errors-in-console"].get("details", {}).get("items", [])),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--lighthouse", required=True)
    parser.add_argument("--detail", required=True, help="path of a workbook page")
    parser.add_argument("--profile", required=True, help="path of a profile page")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", help="write the results here too")
    opts = parser.parse_args()
    pages = {
        "home": "/",
        "list": "/workbooks/",
        "detail": opts.detail,
        "profile": opts.profile,
        "login": "/accounts/login/",
    }
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in pages.items():
            for form_factor in ("mobile", "desktop"):
                runs = []
                for i in range(opts.runs):
                    runs.append(
                        audit(opts.lighthouse, opts.base + path, form_factor, Path(tmp) / f"{i}.json")
                    )
                perf = statistics.median_low([r["scores"]["performance"] for r in runs])
                chosen = next(r for r in runs if r["scores"]["performance"] == perf)
                row = {
                    "page": name,
                    "form": form_factor,
                    **chosen,
                    "perf_runs": [r["scores"]["performance"] for r in runs],
                }
                results.append(row)
                s = row["scores"]
                print(
                    f"{name:8} {form_factor:7} perf {s['performance']:3} (runs {row['perf_runs']}) "
                    f"a11y {s['accessibility']:3} bp {s['best-practices']:3} seo {s['seo']:3} "
                    f"CLS {row['cls']:.3f} {row['bytes'] / 1024:5.1f} KB {row['requests']:2} req "
                    f"console errors {row['console_errors']} failing: {', '.join(row['failing']) or '-'}",
                    flush=True,
                )
    if opts.json:
        Path(opts.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

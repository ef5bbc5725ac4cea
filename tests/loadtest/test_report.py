"""The load-test report from raw samples: nearest-rank percentiles, timeouts as errors, offered against
achieved, the verdict per phase, the HTML charts and the text appended to docs/performance.md."""

import pytest

from loadtest import report
from loadtest.samples import Arrival, CpuSample, Phase, Run, Sample


def test_nearest_rank_percentiles():
    values = [float(v) for v in range(1, 101)]
    assert report.percentile(values, 50) == 50
    assert report.percentile(values, 95) == 95
    assert report.percentile(values, 99) == 99
    assert report.percentile([7.0], 99) == 7
    assert report.percentile([], 95) == 0


def synthetic_run() -> Run:
    run = Run(base_url="http://127.0.0.1:1", scenario="design", started=1000.0, ended=1020.0)
    run.phases = [(Phase("calm", 10, 2), 1000.0, 1010.0), (Phase("storm", 10, 10), 1010.0, 1020.0)]
    for i in range(20):  # calm: 20 arrivals, all fine, 20-210 ms
        at = 1000.0 + i * 0.5
        run.arrivals.append(Arrival("calm", at, at, at + 0.2, True))
        run.samples.append(Sample(at, "calm", "login", 20.0 + i * 10, 200, True, ""))
    for i in range(100):  # storm: 100 arrivals, 10 complete, 30 fast 503s, 60 timeouts
        at = 1010.0 + i * 0.1
        ok = i < 10
        run.arrivals.append(Arrival("storm", at, at, at + 1, ok))
        if ok:
            run.samples.append(Sample(at, "storm", "login", 300.0, 200, True, ""))
        elif i < 40:
            run.samples.append(Sample(at, "storm", "login", 5.0, 503, False, "status 503"))
        else:
            run.samples.append(Sample(at, "storm", "list", 10000.0, 0, False, "ConnectionTimeout"))
    run.cpu = [CpuSample(1000.0 + s, 1.0, 1.5, 0.2, 0.1, 0.1) for s in range(1, 21)]
    return run


def test_summary_per_phase_and_route_with_offered_against_achieved():
    summary = report.summarize(synthetic_run())
    calm, storm = summary.phases
    assert calm.offered_per_s == pytest.approx(2.0) and calm.achieved_per_s == pytest.approx(2.0)
    assert calm.latency.p95 == 200 and calm.latency.errors == 0
    assert storm.offered_per_s == pytest.approx(10.0) and storm.achieved_per_s == pytest.approx(1.0)
    assert storm.timeouts == 60
    assert storm.latency.errors == 90 and storm.latency.p50 == 10000  # timeouts are errors with their time
    assert storm.honest_share == pytest.approx(0.4)  # 10 within the SLA + 30 fast 503s of 100
    assert set(storm.routes) == {"login", "list"}
    assert calm.cpu["server"] == pytest.approx(1.5)
    assert calm.cpu_s_per_arrival == pytest.approx(1.5 * 10 / 20)
    assert calm.db_s_per_arrival == pytest.approx(0.2 * 10 / 20)
    assert summary.verdict.phases["calm"].passed
    assert not summary.verdict.phases["storm"].passed
    assert "storm: achieved 1.0 arrivals/s < offered 10.0 arrivals/s" in summary.verdict.failures
    assert not summary.passed


def test_html_report_and_docs_block(tmp_path):
    run = synthetic_run()
    summary = report.summarize(run)
    html = report.render_html(summary, run)
    assert html.count("<svg") == 3
    assert "calm" in html and "storm" in html  # phase boundaries are labelled
    assert "SLA p95 500 ms" in html
    docs = tmp_path / "performance.md"
    docs.write_text("# Performance\n")
    report.append_to_docs(docs, summary, command="python -m loadtest --phases x", html_path=None)
    text = docs.read_text()
    assert text.startswith("# Performance\n")
    assert "### Load test: design" in text and "python -m loadtest --phases x" in text
    assert "| storm | 10 | 10 | 10.0 | 1.0 |" in text
    assert "Verdict (SLA per phase): FAIL" in text

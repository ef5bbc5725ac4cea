"""The staff capacity page: the latest stored report (or one from its history), one chart per resource.

Access as the health page: anonymous visitors are sent to log in, logged-in non-staff get a 404. The page
runs a fixed number of queries whatever the amount of history: the charts are drawn from the report's own
data (its daily series and fits), not from the samples.

"Now" is now: on the latest report, each resource's current value is the latest sample's (the report is
daily; its own "current" would be frozen until the next one), while the history, projections, crossings and
recommendations are the report's, shown with its time. An older report (``?report=``) is shown as it was.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.safestring import SafeString
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from monitoring.access import staff_page
from monitoring.capacity import report as capacity_report
from monitoring.capacity.report import DATE, OVER, STALE_AFTER, CapacityAnalysis, ResourceReport
from monitoring.capacity.resources import SOON_DAYS
from monitoring.models import CapacityReport, CapacitySample
from sigma_playground.charts import Marker, Point, time_series_svg

AHEAD_DAYS = 90
HISTORY_ROWS = 60
PROJECTION_STEP_DAYS = 2


def tone(r: ResourceReport) -> str:
    if r.crossing.status == OVER:
        return "critical"
    if r.crossing.status == DATE and (r.crossing.days or 0) <= SOON_DAYS:
        return "warning"
    return "ok"


def resource_chart(analysis: CapacityAnalysis, r: ResourceReport) -> SafeString:
    now = analysis.generated_at
    start = now - timedelta(days=analysis.history_days)
    end = now + timedelta(days=AHEAD_DAYS)
    history = [Point(datetime.combine(p.day, time(12), tzinfo=UTC), p.value, p.low, p.high) for p in r.series]
    projected = []
    for day in range(0, AHEAD_DAYS + 1, PROJECTION_STEP_DAYS):
        p = r.predict(day)
        if p is not None:
            projected.append(Point(now + timedelta(days=day), p.value, p.low, p.high))
    lower, upper = r.resource.bounds
    if upper is None:
        candidates = [p.high or p.value for p in history] + [p.value for p in projected]
        candidates += [v for v in (r.threshold, r.current) if v is not None]
        upper = max(candidates, default=0.0) * 1.2 or 1.0
    marker = None
    if r.crossing.status == DATE and r.crossing.date and r.threshold is not None:
        at = datetime.combine(r.crossing.date, time(12), tzinfo=UTC)
        if at <= end:
            marker = Marker(at, r.threshold, f"crosses ~{r.crossing.date:%b} {r.crossing.date.day}")
    if r.series:
        trend = f"daily worst hour from {r.format(r.series[0].value)} to {r.format(r.series[-1].value)}"
    else:
        trend = "no history yet"
    description = f"{r.title}: {trend}; threshold {r.threshold_text}; crossing: {r.crossing.describe()}."
    return time_series_svg(
        chart_id=f"chart-{r.key}",
        title=f"{r.title}, last {analysis.history_days} days and the next {AHEAD_DAYS}",
        description=description,
        history=history,
        projection=projected,
        threshold=r.threshold,
        threshold_label=r.threshold_label,
        higher_is_worse=r.resource.higher_is_worse,
        start=start,
        end=end,
        now=now,
        y_range=(lower, upper),
        format_y=r.resource.format_axis,
        tone=tone(r),
        marker=marker,
    )


def with_latest_sample(analysis: CapacityAnalysis, sample: CapacitySample) -> None:
    """Each resource's current value (and what it is out of, where it was read) from ``sample``."""
    values = {
        name: float(getattr(sample, name))
        for name in CapacitySample.metric_fields()
        if getattr(sample, name) is not None
    }
    details = capacity_report._details(values, sample)
    for r in analysis.resources:
        r.current = values.get(r.key)
        r.detail = details.get(r.key, "")


@require_GET
@never_cache
@staff_page
def capacity(request: HttpRequest) -> HttpResponse:
    wanted = request.GET.get("report", "")
    reports = CapacityReport.objects.order_by("-created_at")
    if wanted:
        if not wanted.isdigit():
            raise Http404
        stored = reports.filter(pk=int(wanted)).first()
        if stored is None:
            raise Http404
    else:
        stored = reports.first()
    if stored is not None:
        analysis = CapacityAnalysis.from_dict(stored.data)
    else:
        analysis = capacity_report.build(timezone.now())
    history = list(reports.defer("data", "text")[:HISTORY_ROWS])
    latest_sample = CapacitySample.objects.first()
    live = stored is not None and not wanted and latest_sample is not None
    if live and latest_sample is not None:  # (live says so; the type checker needs it spelled out)
        with_latest_sample(analysis, latest_sample)
    charts = [
        (r, resource_chart(analysis, r)) for r in analysis.resources if r.series or r.current is not None
    ]
    empty = [r for r in analysis.resources if not (r.series or r.current is not None)]
    context = {
        "analysis": analysis,
        "stored": stored,
        "charts": charts,
        "empty": empty,
        "history": history,
        "latest_sample": latest_sample,
        "live": live,
        "sample_stale": latest_sample is not None and timezone.now() - latest_sample.taken_at > STALE_AFTER,
        "demo_text": capacity_report.DEMO_TEXT,
        "method": capacity_report.METHOD,
        "ahead_days": AHEAD_DAYS,
    }
    return render(request, "monitoring/capacity.html", context)

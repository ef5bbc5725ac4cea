from __future__ import annotations

import logging

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from prometheus_client import CONTENT_TYPE_LATEST

from monitoring import access, instruments, rum
from monitoring.diagnosis import diagnose
from monitoring.exposition import web_exposition

logger = logging.getLogger(__name__)


@require_GET
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition; a 404 (as if it weren't there) unless from an allowed network or with the token."""
    if not access.metrics_allowed(request):
        raise Http404
    return HttpResponse(web_exposition(), content_type=CONTENT_TYPE_LATEST)


_ACCEPTED_TYPES = ("text/plain", "application/json", "")


@csrf_exempt  # a beacon carries no token; the body is validated strictly and can only add to bounded series
@require_POST
def rum_beacon(request: HttpRequest) -> HttpResponse:
    """Receive one beacon from static/js/rum.js: 204 when recorded, 4xx otherwise, never 500."""
    try:
        response = _rum_beacon(request)
    except Exception:  # a bug here must cost a beacon, not a 500
        logger.exception("rum: beacon handling failed")
        instruments.RUM_REPORTS.inc(result="malformed")
        response = HttpResponse(status=400)
    # Refused beacons are counted in sigma_rum_reports_total; a flood of them must not flood the log as well
    # (Django logs every 4xx as a warning unless told it was handled).
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def _rum_beacon(request: HttpRequest) -> HttpResponse:
    content_type = request.META.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if content_type not in _ACCEPTED_TYPES:
        instruments.RUM_REPORTS.inc(result="unsupported_media_type")
        return HttpResponse(status=415)
    limit = settings.RUM_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = limit + 1
    if declared > limit:
        instruments.RUM_REPORTS.inc(result="too_large")
        return HttpResponse(status=413)
    if not rum.allow_beacon(access.client_address(request)):
        instruments.RUM_REPORTS.inc(result="rate_limited")
        return HttpResponse(status=429)
    body = request.read(limit + 1)
    if len(body) > limit:
        instruments.RUM_REPORTS.inc(result="too_large")
        return HttpResponse(status=413)
    try:
        report = rum.parse(body)
    except rum.Malformed:
        instruments.RUM_REPORTS.inc(result="malformed")
        return HttpResponse(status=400)
    rum.record(report)
    instruments.RUM_REPORTS.inc(result="accepted")
    return HttpResponse(status=204)


@require_GET
@never_cache
@access.staff_page
def health(request: HttpRequest) -> HttpResponse:
    report = diagnose()
    return render(request, "monitoring/health.html", {"report": report}, status=200)


@require_GET
@never_cache
def health_json(request: HttpRequest) -> JsonResponse:
    """For staff sessions and machines with HEALTH_BEARER_TOKEN; the HTTP status is 200 whatever the health,
    so a probe can't mistake "critical" for "the endpoint is down" (``status`` in the body says it)."""
    if not access.health_allowed(request):
        raise Http404
    return JsonResponse(diagnose().as_dict())

"""The notifications page and the digest settings. Personal pages: never cached."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts.http import AuthenticatedHttpRequest
from notifications import selectors, services
from notifications.forms import DigestForm


@never_cache
@login_required
def notification_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The newest groups; the unread ones shown here are marked read (before the header's bell counts)."""
    items = selectors.recent(user=request.user)
    unread_ids = [n.pk for n in items if n.read_at is None]
    services.mark_read(user=request.user, ids=unread_ids)
    return render(request, "notifications/list.html", {"items": items, "unread_ids": set(unread_ids)})


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def digest_settings(request: AuthenticatedHttpRequest) -> HttpResponse:
    current = selectors.settings_of(user=request.user)
    form = DigestForm(request.POST or None, instance=current)
    if request.method == "POST" and form.is_valid():
        services.settings_update(
            user=request.user, **{name: form.cleaned_data[name] for name in DigestForm.Meta.fields}
        )
        messages.success(request, "Your email digest settings were saved.")
        return redirect("notifications:settings")
    return render(request, "notifications/settings.html", {"form": form})

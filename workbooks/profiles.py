"""A person's profile page (/users/<name>/): who they are, whom they follow, and their workbooks. The gallery
owns it because it shows workbooks; the people pages around it are accounts'."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string

from accounts import selectors as account_selectors
from accounts.views import user_page_namespaces
from sigma_playground.caching.pages import cache_anonymous_page, cached_fragment, fill_personal
from workbooks import selectors


@cache_anonymous_page("profile", namespaces=user_page_namespaces)
def profile_detail(request: HttpRequest, username: str) -> HttpResponse:
    profile_user = account_selectors.user_get_public(username=username)
    if profile_user.username != username:
        return redirect(profile_user, permanent=True)
    fragment = cached_fragment(
        "profile",
        template="accounts/fragments/profile.html",
        context=lambda: {
            "profile_user": profile_user,
            "counts": {
                **account_selectors.follow_counts(user=profile_user),
                **selectors.profile_stats(user=profile_user),
            },
            "workbooks": selectors.profile_workbooks(user=profile_user),
        },
        namespaces=user_page_namespaces(request, profile_user.username),
    )
    is_self = request.user.is_authenticated and request.user.pk == profile_user.pk
    personal = {
        "follow": render_to_string(
            "accounts/includes/follow_button.html",
            {
                "profile_user": profile_user,
                "is_following": account_selectors.is_following(follower=request.user, followed=profile_user),
            },
            request=request,
        ),
        "own": render_to_string(
            "accounts/includes/own_workbooks.html",
            {"unlisted": selectors.own_unlisted_workbooks(user=profile_user)},
            request=request,
        )
        if is_self
        else "",
    }
    return render(
        request,
        "accounts/profile_detail.html",
        {"fragment": fill_personal(fragment, personal), "profile_user": profile_user},
    )

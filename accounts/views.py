from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors, services, throttling
from accounts.forms import EmailChangeForm, ProfileForm, SignUpForm
from accounts.http import AuthenticatedHttpRequest
from accounts.tokens import email_verification_token
from sigma_playground import ratelimit
from sigma_playground.caching import keys
from sigma_playground.caching.pages import (
    QuerySpec,
    cache_anonymous_page,
    choice,
    one,
)
from sigma_playground.pagination import (
    FRAGMENT_PARAM,
    cursor_fallback,
    fragment_page,
    keyset_page,
    list_query,
    page_links,
    query_url,
)
from sigma_playground.site import absolute


def _rate_limited(
    request: HttpRequest, decision: ratelimit.Decision, *, title: str, what: str
) -> HttpResponse:
    """The 429 page of a limit on a costly action (docs/security.md), with Retry-After."""
    minutes = max(1, round(decision.retry_after / 60))
    context = {"title": title, "what": what, "minutes": minutes}
    response = render(request, "accounts/rate_limited.html", context, status=429)
    response["Retry-After"] = str(decision.retry_after)
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """The same answer whether or not the address has an account (accounts.services.signup)."""
    if request.user.is_authenticated:
        return redirect("home")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        decision = throttling.signup_allowed(request)
        if not decision.allowed:
            return _rate_limited(
                request,
                decision,
                title="Too many sign-ups",
                what="Too many accounts were created from your address in the last hour.",
            )
        services.signup(
            username=form.cleaned_data["username"],
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
            base_url=absolute(request, "/").rstrip("/"),
        )
        return redirect("accounts:signup_done")
    return render(request, "accounts/signup.html", {"form": form})


@never_cache
def signup_done(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/signup_done.html")


@never_cache
@require_http_methods(["GET"])
def verify_email(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    """The link mailed at sign-up: confirms the address and signs its owner in. Works once."""
    user = selectors.user_from_uidb64(uidb64)
    if user is None or not email_verification_token.check_token(user, token):
        return render(request, "accounts/verify_failed.html", status=400)
    services.email_verify(user=user)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    messages.success(request, f"Your address is confirmed. Welcome to Sigma Playground, {user.username}!")
    return redirect(user.get_absolute_url())


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def email_change(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Ask for a new address (with the password). The same answer whether or not another account has it
    (accounts.services.email_change_request)."""
    form = EmailChangeForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        services.email_change_request(
            user=request.user,
            new_email=form.cleaned_data["email"],
            base_url=absolute(request, "/").rstrip("/"),
        )
        return redirect("accounts:email_change_sent")
    if form.retry_after is not None:
        response = render(request, "accounts/email_change.html", {"form": form}, status=429)
        response["Retry-After"] = str(form.retry_after)
        return response
    return render(request, "accounts/email_change.html", {"form": form})


@never_cache
@login_required
def email_change_sent(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(request, "accounts/email_change_sent.html")


@never_cache
@require_http_methods(["GET", "POST"])
def email_change_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """The link mailed to the new address. GET asks, POST changes: mail scanners that open every link in a
    message must not change anyone's address. Works once (accounts.tokens)."""
    found = selectors.email_change_from_token(token)
    if found is None:
        return render(request, "accounts/verify_failed.html", status=400)
    user, new_email = found
    if request.method == "GET":
        return render(
            request, "accounts/email_change_confirm.html", {"account": user, "new_email": new_email}
        )
    try:
        services.email_change_confirm(user=user, new_email=new_email)
    except services.EmailTaken:
        return render(request, "accounts/verify_failed.html", status=400)
    messages.success(request, f"Your email address is now {new_email}.")
    if request.user.is_authenticated and request.user.pk == user.pk:
        return redirect("accounts:profile_edit")
    return redirect("accounts:login")


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def profile_edit(request: AuthenticatedHttpRequest) -> HttpResponse:
    user = request.user
    form = ProfileForm(request.POST or None, request.FILES or None, instance=user)
    if request.method == "POST" and form.is_valid():
        services.user_update_profile(
            user=user,
            full_name=form.cleaned_data["full_name"],
            bio=form.cleaned_data["bio"],
            avatar=form.processed_avatar,
            clear_avatar=form.cleaned_data.get("avatar") is False,
        )
        messages.success(request, "Your profile was saved.")
        return redirect(user.get_absolute_url())
    if request.method == "POST":
        # The bound form's instance has the rejected values; show the stored ones in the header.
        user.refresh_from_db()
    return render(request, "accounts/profile_edit.html", {"form": form})


def _people(request: HttpRequest) -> list[str]:
    return [keys.PEOPLE]


def _people_query(value: str) -> str:
    return " ".join(value.split())[: selectors.PEOPLE_MAX_QUERY]


PEOPLE_QUERY = QuerySpec({"q": one(_people_query), "cursor": one(), FRAGMENT_PARAM: choice("1")})


@cache_anonymous_page("people", namespaces=_people, query=PEOPLE_QUERY)
@cursor_fallback
def people_list(request: HttpRequest) -> HttpResponse:
    """/users/: people, most followed first; ``?q=`` finds them by username or name."""
    query = list_query(request, PEOPLE_QUERY)
    q = query.get("q", "")

    def context() -> dict:
        page = keyset_page(
            selectors.people(q=q),
            ordering=selectors.PEOPLE_ORDER,
            cursor=query.get("cursor") or None,
            per_page=settings.PAGE_SIZE,
        )
        return {
            "q": q,
            "page": page,
            "people": page.object_list,
            "links": page_links(query, page),
            "clear_url": query_url(query, q=None, cursor=None),
        }

    return fragment_page(
        request,
        "people",
        template="accounts/fragments/people.html",
        context=context,
        namespaces=[keys.PEOPLE],
        spec=PEOPLE_QUERY,
        page_template="accounts/people.html",
        page_context={"q": q},
    )


def user_page_namespaces(request: HttpRequest, username: str) -> list[str]:
    """What a person's pages show (profile, followers, following): cards of workbooks and the person."""
    return [keys.LISTS, keys.ns_user(username)]


FOLLOW_QUERY = QuerySpec({"cursor": one(), FRAGMENT_PARAM: choice("1")})


def _follow_list(request: HttpRequest, username: str, *, which: str) -> HttpResponse:
    profile_user = selectors.user_get_public(username=username)
    query = list_query(request, FOLLOW_QUERY)

    def context() -> dict:
        if which == "followers":
            queryset, attr = selectors.followers_of(user=profile_user), "follower"
        else:
            queryset, attr = selectors.following_of(user=profile_user), "followed"
        page = keyset_page(
            queryset,
            ordering=selectors.FOLLOW_ORDER,
            cursor=query.get("cursor") or None,
            per_page=settings.PAGE_SIZE,
        )
        return {
            "profile_user": profile_user,
            "page": page,
            "links": page_links(query, page),
            "people": [getattr(link, attr) for link in page.object_list],
            "which": which,
        }

    return fragment_page(
        request,
        which,
        template="accounts/fragments/follow_list.html",
        context=context,
        namespaces=user_page_namespaces(request, profile_user.username),
        spec=FOLLOW_QUERY,
        page_template="accounts/follow_list.html",
        page_context={"profile_user": profile_user, "which": which},
    )


@cache_anonymous_page("followers", namespaces=user_page_namespaces, query=FOLLOW_QUERY)
@cursor_fallback
def followers(request: HttpRequest, username: str) -> HttpResponse:
    return _follow_list(request, username, which="followers")


@cache_anonymous_page("following", namespaces=user_page_namespaces, query=FOLLOW_QUERY)
@cursor_fallback
def following(request: HttpRequest, username: str) -> HttpResponse:
    return _follow_list(request, username, which="following")


def _follow_answer(request: HttpRequest, target, *, message: str, is_following: bool) -> HttpResponse:
    if request.headers.get("X-Requested-With") == "fetch":  # the in-place script (static/js/gallery.js)
        html = render_to_string(
            "accounts/includes/follow_button.html",
            {"profile_user": target, "is_following": is_following},
            request=request,
        ).strip()
        return JsonResponse({"html": html, "message": message})
    messages.success(request, message)
    return redirect(target)


@login_required
@require_POST
def follow(request: AuthenticatedHttpRequest, username: str) -> HttpResponse:
    target = selectors.user_get_public(username=username)
    try:
        services.follow(follower=request.user, followed=target)
    except services.FollowError as exc:
        if request.headers.get("X-Requested-With") == "fetch":
            return JsonResponse({"error": str(exc)}, status=400)
        messages.error(request, str(exc))
        return redirect(target)
    return _follow_answer(request, target, message=f"You follow {target.display_name}.", is_following=True)


@login_required
@require_POST
def unfollow(request: AuthenticatedHttpRequest, username: str) -> HttpResponse:
    target = selectors.user_get_public(username=username)
    services.unfollow(follower=request.user, followed=target)
    return _follow_answer(
        request, target, message=f"You no longer follow {target.display_name}.", is_following=False
    )


class PasswordResetView(auth_views.PasswordResetView):
    """Django's view with our templates and limits (docs/security.md); links point at SITE_URL's host when it
    is set."""

    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")
    extra_email_context = {"site_name": settings.SITE_NAME}

    def form_valid(self, form):
        decision = throttling.password_reset_allowed(self.request)
        if not decision.allowed:
            return _rate_limited(
                self.request,
                decision,
                title="Too many password resets",
                what="Too many password resets were asked for from your address in the last hour.",
            )
        if not throttling.password_reset_mail_allowed(form.cleaned_data["email"]):
            return redirect(self.get_success_url())  # what anyone sees for any address: nothing more is sent
        if settings.SITE_URL:
            parts = urlsplit(settings.SITE_URL)
            self.domain_override = parts.netloc
            self.extra_email_context = {**self.extra_email_context, "protocol": parts.scheme}
        return super().form_valid(form)

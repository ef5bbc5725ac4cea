from django.contrib.auth import get_user_model
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def home(request: HttpRequest) -> HttpResponse:
    people = get_user_model().objects.filter(is_active=True)
    query = request.GET.get("q", "").strip()[:200]
    if query:
        people = people.filter(Q(username__icontains=query) | Q(full_name__icontains=query))
    newest_members = people.order_by("-created_at", "-id")[:12]
    return render(request, "home.html", {"newest_members": newest_members, "query": query})

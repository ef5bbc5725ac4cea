"""/users/: the people pages (accounts) and each person's profile and feed (the gallery's)."""

from django.urls import path

from accounts import views
from workbooks import profiles, sharing

app_name = "profiles"

urlpatterns = [
    path("", views.people_list, name="list"),
    path("<str:username>/", profiles.profile_detail, name="detail"),
    path("<str:username>/feed/", sharing.author_feed, name="feed"),
    path("<str:username>/followers/", views.followers, name="followers"),
    path("<str:username>/following/", views.following, name="following"),
    path("<str:username>/follow/", views.follow, name="follow"),
    path("<str:username>/unfollow/", views.unfollow, name="unfollow"),
]

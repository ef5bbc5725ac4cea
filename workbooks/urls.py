from django.urls import path

from workbooks import sharing, views

app_name = "workbooks"

urlpatterns = [
    path("workbooks/", views.workbook_list, name="list"),
    path("workbooks/new/", views.workbook_create, name="create"),
    path("workbooks/<int:pk>/", views.workbook_redirect, name="redirect"),
    path("workbooks/<int:pk>/edit/", views.workbook_edit, name="edit"),
    path("workbooks/<int:pk>/delete/", views.workbook_delete, name="delete"),
    path("workbooks/<int:pk>/favorite/", views.favorite, name="favorite"),
    path("workbooks/<int:pk>/unfavorite/", views.unfavorite, name="unfavorite"),
    path("workbooks/<int:pk>/stats/", views.workbook_stats, name="stats"),
    path("workbooks/<int:pk>/<slug:slug>/", views.workbook_detail, name="detail"),
    path("workbooks/link/<slug:token>/", views.workbook_shared, name="shared"),
    path("tags/", views.tag_list, name="tags"),
    path("tags/<slug:slug>/", views.tag_detail, name="tag"),
    path("tags/<slug:slug>/feed/", sharing.tag_feed, name="tag_feed"),
    path("feed/", views.feed, name="feed"),
    path("favorites/", views.favorites, name="favorites"),
    path("me/workbooks/", views.my_workbooks, name="mine"),
]

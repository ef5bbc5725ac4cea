"""The gallery's routes at the site's root, without a namespace: the home page, sitemaps, oEmbed and the
newest-workbooks feed (the project's URLconf includes them by name, so it imports no app)."""

from django.urls import path

from workbooks import sharing, views

urlpatterns = [
    path("", views.home, name="home"),
    path("sitemap.xml", sharing.sitemap_index, name="sitemap_index"),
    path("sitemaps/pages.xml", sharing.sitemap_pages, name="sitemap_pages"),
    path("sitemaps/workbooks-<int:chunk>.xml", sharing.sitemap_workbooks, name="sitemap_workbooks"),
    path("oembed", sharing.oembed, name="oembed"),
    path("feeds/newest/", sharing.newest_feed, name="feed_newest"),
]

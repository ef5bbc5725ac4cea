from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Exists, OuterRef
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone

from sigma_playground import text

HEX_COLOUR_RE = r"^#[0-9a-f]{6}\Z"
HEX_COLOUR_DB_RE = r"^#[0-9a-f]{6}$"


class Visibility(models.TextChoices):
    PUBLIC = "public", "Public: listed in the gallery"
    UNLISTED = "unlisted", "Unlisted: only people with the link"
    PRIVATE = "private", "Private: only you"


class Tag(models.Model):
    name = models.CharField(max_length=40, validators=[text.SINGLE_LINE])
    slug = models.SlugField(max_length=50, unique=True)
    colour = models.CharField(
        max_length=7,
        default="#64748b",
        validators=[RegexValidator(HEX_COLOUR_RE, "Use a colour like #1a2b3c (lower-case hex).")],
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(Lower("name"), name="workbooks_tag_name_ci_uniq"),
            models.CheckConstraint(
                condition=models.Q(colour__regex=HEX_COLOUR_DB_RE), name="workbooks_tag_colour_hex"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("workbooks:tag", kwargs={"slug": self.slug})


# An unlisted workbook is reached only through a link carrying this token: 24 random bytes (192 bits, at least
# the 128 the issue asks for), URL-safe base64 (32 characters). Ids are sequential; tokens cannot be counted.
SHARE_TOKEN_BYTES = 24


def new_share_token() -> str:
    return secrets.token_urlsafe(SHARE_TOKEN_BYTES)


class WorkbookQuerySet(models.QuerySet):
    def listed(self) -> WorkbookQuerySet:
        """What anyone may see in lists, search, tag pages, feeds and counts: public, published, by an
        active author. Unlisted, private and draft workbooks never pass this filter."""
        # "No inactive author" rather than a join on is_active: almost every user is active, so the join
        # makes the planner hash the whole user table whenever many rows match; this anti-join probes
        # accounts_user_inactive_idx (accounts 0003), which holds only the few deactivated accounts.
        return self.public().filter(embed_broken=False)

    def public(self) -> WorkbookQuerySet:
        """``listed()`` including workbooks whose embed link is broken: what an author's profile shows (a
        broken link leaves the lists, not its author's page; see workbooks.linkcheck)."""
        return self.filter(visibility=Visibility.PUBLIC, published_at__isnull=False).exclude(
            Exists(get_user_model().objects.filter(pk=OuterRef("author_id"), is_active=False))
        )


class Workbook(models.Model):
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="workbooks")
    title = models.CharField(max_length=200, validators=[text.SINGLE_LINE])
    slug = models.SlugField(max_length=200, allow_unicode=False)
    description = models.TextField(max_length=5000, blank=True, validators=[text.MULTI_LINE])
    sigma_embed_url = models.URLField(max_length=300)
    # The validated, re-encoded master. It lives in the private storage and is never served; pages
    # use the derivatives listed in ``thumbnail_derivatives`` (rendered by a Celery task).
    thumbnail = models.CharField(max_length=200, blank=True)
    thumbnail_width = models.PositiveIntegerField(null=True, blank=True)
    thumbnail_height = models.PositiveIntegerField(null=True, blank=True)
    thumbnail_derivatives = models.JSONField(default=dict, blank=True)
    # Where the thumbnail came from: "upload" (the author's), "embed" (a screenshot of the public embed, see
    # workbooks.preview) or "" (none, or one from before this was recorded). Only an upload stops previews.
    thumbnail_source = models.CharField(max_length=10, blank=True, default="", db_default="", editable=False)
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PUBLIC)
    # Set whenever the workbook is unlisted (save() and workbooks.services); kept if it changes visibility, so
    # making it unlisted again revives the same link.
    share_token = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)
    published_at = models.DateTimeField(null=True, blank=True)  # null: a draft
    is_featured = models.BooleanField(default=False)
    view_count = models.PositiveBigIntegerField(default=0)
    favorite_count = models.PositiveIntegerField(default=0)
    # Denormalised from the last 7 days of WorkbookDailyStat by workbooks.trending; see the formula there.
    trending_score = models.FloatField(default=0.0)
    # Tag names, space-separated, kept by workbooks.services so that the full-text column (PostgreSQL only,
    # a stored generated tsvector added in migration 0002; not a model field) can include them.
    tag_names = models.TextField(blank=True, default="", editable=False)
    tags: models.ManyToManyField[Tag, WorkbookTag] = models.ManyToManyField(
        Tag, through="WorkbookTag", related_name="workbooks", blank=True
    )
    # Set by the embed link checker (workbooks.linkcheck) after EMBED_CHECK_FAILURES_TO_BREAK consecutive
    # failed checks, cleared by the next successful one. A broken workbook leaves every list (listed()).
    # db_default: rows written by raw SQL and COPY (seed_demo, tests) need no value.
    embed_broken = models.BooleanField(default=False, db_default=False, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WorkbookQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(visibility__in=[v.value for v in Visibility]),
                name="workbooks_workbook_visibility_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(view_count__gte=0, favorite_count__gte=0, trending_score__gte=0),
                name="workbooks_workbook_counters_non_negative",
            ),
            models.CheckConstraint(condition=~models.Q(title=""), name="workbooks_workbook_title_not_blank"),
        ]

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs) -> None:
        if self.visibility == Visibility.UNLISTED and not self.share_token:
            self.share_token = new_share_token()
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "share_token"}
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        """The page's address. For a published unlisted workbook that is its share link: the id URL answers
        only its author and staff."""
        if self.visibility == Visibility.UNLISTED and self.share_token and self.published_at is not None:
            return reverse("workbooks:shared", kwargs={"token": self.share_token})
        return reverse("workbooks:detail", kwargs={"pk": self.pk, "slug": self.slug})

    @property
    def is_draft(self) -> bool:
        return self.published_at is None

    @property
    def is_listed(self) -> bool:
        return (
            self.visibility == Visibility.PUBLIC and self.published_at is not None and not self.embed_broken
        )


# Foreign keys below say db_index=False where another index already leads with the column (the unique
# pair constraints, or the hand-written indexes of migration 0003): Django's automatic FK index would be
# a duplicate that every write pays for.


class WorkbookTag(models.Model):
    workbook = models.ForeignKey(Workbook, on_delete=models.CASCADE, related_name="tag_links", db_index=False)
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="workbook_links", db_index=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workbook", "tag"], name="workbooks_workbooktag_pair_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.workbook_id} #{self.tag_id}"


class Favorite(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="favorites", db_index=False
    )
    workbook = models.ForeignKey(Workbook, on_delete=models.CASCADE, related_name="favorites", db_index=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "workbook"], name="workbooks_favorite_pair_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} ★ {self.workbook_id}"


class WorkbookDailyStat(models.Model):
    """Views and favorites per workbook per UTC day: what trending reads."""

    workbook = models.ForeignKey(
        Workbook, on_delete=models.CASCADE, related_name="daily_stats", db_index=False
    )
    date = models.DateField()
    views = models.PositiveIntegerField(default=0)
    favorites = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workbook", "date"], name="workbooks_dailystat_pair_uniq"),
            models.CheckConstraint(
                condition=models.Q(views__gte=0, favorites__gte=0), name="workbooks_dailystat_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.workbook_id} on {self.date}"


class SearchLexeme(models.Model):
    """Distinct words of the full-text column with their document counts (PostgreSQL only; see
    workbooks.search). Lets a prefix ("reven") expand to the real words it starts ("revenu"), so the
    search stays an exact GIN lookup that the planner can estimate."""

    word = models.CharField(max_length=100, primary_key=True)
    documents = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return self.word


class AppliedViewBatch(models.Model):
    """A view-counter batch already written to the database (workbooks.counters): makes a flush that is run
    again after dying halfway count nothing twice. Rows older than a week are deleted nightly."""

    batch_id = models.CharField(max_length=32, unique=True)
    applied_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.batch_id


class EmbedStatus(models.TextChoices):
    UNKNOWN = "unknown", "Not checked yet"
    OK = "ok", "OK"
    FAILING = "failing", "Failing (not yet broken)"
    BROKEN = "broken", "Broken"


class EmbedCheck(models.Model):
    """The embed link checker's state for one workbook (workbooks.linkcheck): the last check's outcome,
    HTTP status and time, the consecutive failures, when the link is next due, and the last few checks."""

    workbook = models.OneToOneField(
        Workbook, on_delete=models.CASCADE, primary_key=True, related_name="embed_check"
    )
    url = models.CharField(max_length=300)  # the link these results are about: a changed link starts over
    status = models.CharField(max_length=10, choices=EmbedStatus.choices, default=EmbedStatus.UNKNOWN)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=200, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveSmallIntegerField(default=0)
    broken_since = models.DateTimeField(null=True, blank=True)
    next_check_at = models.DateTimeField(default=timezone.now)
    # The last few checks, newest first: [[iso time, http status or null, outcome], ...]
    recent = models.JSONField(default=list, blank=True)
    # Previews from the embed (workbooks.preview): when the next one is due (null: none wanted, e.g. the
    # author uploaded a thumbnail), the link the current one shows, failures since the last success.
    preview_next_at = models.DateTimeField(null=True, blank=True)
    preview_url = models.CharField(max_length=300, blank=True)
    preview_taken_at = models.DateTimeField(null=True, blank=True)
    preview_failures = models.PositiveSmallIntegerField(default=0)
    preview_error = models.CharField(max_length=200, blank=True)

    class Meta:
        indexes = [
            # The checker's batch: the links due first (next_check_at <= now ORDER BY next_check_at).
            models.Index(fields=["next_check_at"], name="workbooks_embedcheck_due_idx"),
            # The preview beat task: previews due first (preview_next_at <= now), only rows that want one.
            models.Index(
                fields=["preview_next_at"],
                name="workbooks_embedcheck_prev_idx",
                condition=models.Q(preview_next_at__isnull=False),
            ),
            # Admin's "broken" filter and counts: a handful of rows.
            models.Index(
                fields=["status"],
                name="workbooks_embedcheck_bad_idx",
                condition=models.Q(status__in=["failing", "broken"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.workbook_id}: {self.status}"

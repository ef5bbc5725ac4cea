from __future__ import annotations

import factory
from django.utils import timezone
from django.utils.text import slugify
from factory.django import DjangoModelFactory

from accounts.models import Follow, User
from workbooks.models import Favorite, Tag, Visibility, Workbook, WorkbookTag
from workbooks.services import tag_names_text

TEST_PASSWORD = "correct-horse-battery-staple"


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n:04d}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    full_name = factory.Faker("name")
    bio = factory.Faker("sentence")

    @factory.post_generation
    def password(obj, create, extracted, **kwargs):
        obj.set_password(extracted or TEST_PASSWORD)
        if create:
            obj.save(update_fields=["password"])


class FollowFactory(DjangoModelFactory):
    class Meta:
        model = Follow

    follower = factory.SubFactory(UserFactory)
    followed = factory.SubFactory(UserFactory)


class TagFactory(DjangoModelFactory):
    class Meta:
        model = Tag
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"tag{n}")
    slug = factory.LazyAttribute(lambda o: slugify(o.name))
    colour = "#2456d3"


class WorkbookFactory(DjangoModelFactory):
    """A published public workbook unless told otherwise (``published_at=None`` makes a draft)."""

    class Meta:
        model = Workbook
        skip_postgeneration_save = True

    author = factory.SubFactory(UserFactory)
    title = factory.Faker("sentence", nb_words=4)
    slug = factory.LazyAttribute(lambda o: slugify(o.title)[:200] or "workbook")
    description = factory.Faker("paragraph")
    sigma_embed_url = factory.Sequence(lambda n: f"https://app.sigmacomputing.com/embed/1-Test{n:06d}")
    visibility = Visibility.PUBLIC
    published_at = factory.LazyFunction(timezone.now)

    @factory.post_generation
    def tags(obj, create, extracted, **kwargs):
        if create and extracted:
            WorkbookTag.objects.bulk_create([WorkbookTag(workbook=obj, tag=tag) for tag in extracted])
            obj.tag_names = tag_names_text(tag.name for tag in extracted)
            Workbook.objects.filter(pk=obj.pk).update(tag_names=obj.tag_names)


class FavoriteFactory(DjangoModelFactory):
    class Meta:
        model = Favorite

    user = factory.SubFactory(UserFactory)
    workbook = factory.SubFactory(WorkbookFactory)

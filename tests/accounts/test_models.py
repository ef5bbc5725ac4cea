import pytest
from django.db import IntegrityError, transaction

from accounts.models import Follow, User
from tests.factories import FollowFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_username_unique_regardless_of_case_in_the_database():
    UserFactory(username="alice")
    with pytest.raises(IntegrityError), transaction.atomic():
        # Straight to the database: no form, no model validation.
        User.objects.bulk_create([User(username="Alice", email="other@example.com")])
    assert User.objects.filter(username__iexact="alice").count() == 1


def test_email_unique_regardless_of_case_in_the_database():
    UserFactory(email="Bob@Example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.bulk_create([User(username="bob2", email="bob@example.COM")])


def test_blank_email_refused_by_the_database():
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.bulk_create([User(username="noemail", email="")])


def test_self_follow_refused_by_the_database():
    user = UserFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Follow.objects.create(follower=user, followed=user)
    assert not Follow.objects.exists()


def test_one_follow_row_per_pair_in_the_database():
    link = FollowFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Follow.objects.create(follower=link.follower, followed=link.followed)
    assert Follow.objects.count() == 1


def test_follow_list_is_ordered_newest_first():
    target = UserFactory()
    links = [FollowFactory(followed=target) for _ in range(3)]
    from accounts.selectors import FOLLOW_ORDER, followers_of

    ordered = followers_of(user=target).order_by(*FOLLOW_ORDER)
    assert [f.pk for f in ordered] == [link.pk for link in reversed(links)]

import pytest

from accounts import services
from accounts.models import Follow
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_follow_is_idempotent():
    a, b = UserFactory(), UserFactory()
    assert services.follow(follower=a, followed=b) is True
    assert services.follow(follower=a, followed=b) is False
    assert Follow.objects.filter(follower=a, followed=b).count() == 1


def test_self_follow_raises_a_user_message():
    a = UserFactory()
    with pytest.raises(services.FollowError, match="cannot follow yourself"):
        services.follow(follower=a, followed=a)


def test_unfollow_is_idempotent():
    a, b = UserFactory(), UserFactory()
    services.follow(follower=a, followed=b)
    assert services.unfollow(follower=a, followed=b) is True
    assert services.unfollow(follower=a, followed=b) is False
    assert not Follow.objects.exists()

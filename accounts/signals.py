"""Events of accounts that other apps react to (notifications). Sent by accounts.services after the write
is committed."""

from django.dispatch import Signal

# follower: User, followed: User (a new follow, never a repeated one)
user_followed = Signal()

"""Signed, expiring tokens for links sent by email."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core import signing
from django.utils.crypto import constant_time_compare, salted_hmac

from accounts.models import User


class EmailVerificationTokenGenerator(PasswordResetTokenGenerator):
    """Like a password-reset token (HMAC of the user's state and a timestamp, expiring after
    PASSWORD_RESET_TIMEOUT), for a different purpose: it covers the address and whether it is verified, so a
    link stops working once used, or when the address changes."""

    key_salt = "accounts.tokens.EmailVerificationTokenGenerator"

    def _make_hash_value(self, user: User, timestamp: int) -> str:
        return f"{user.pk}|{user.email.lower()}|{user.email_verified}|{timestamp}"


email_verification_token = EmailVerificationTokenGenerator()


# --- Changing the address ----------------------------------------------------------------------------------
# The link mailed to a new address must carry that address (the account does not store pending changes), so
# it is a django.core.signing token: readable but unforgeable JSON with a timestamp, checked with max_age. It
# also carries an HMAC of the account's state when the change was asked for: the current address and the
# password hash. Following the link changes the address, so the same link (and any other pending one) stops
# working; so does a password change or reset, which lets the owner cancel a change they did not ask for.

EMAIL_CHANGE_SALT = "accounts.tokens.email_change"


def _account_state(user: User) -> str:
    value = f"{user.pk}|{user.email.lower()}|{user.password}"
    return salted_hmac(EMAIL_CHANGE_SALT, value, algorithm="sha256").hexdigest()[:32]


def email_change_token(user: User, new_email: str) -> str:
    payload = {"u": user.pk, "e": new_email, "s": _account_state(user)}
    return signing.dumps(payload, salt=EMAIL_CHANGE_SALT, compress=True)


@dataclass(frozen=True)
class EmailChange:
    """What a valid, unexpired email-change link asks for; ``still_valid_for`` checks the account's state."""

    user_id: int
    new_email: str
    state: str

    def still_valid_for(self, user: User) -> bool:
        return user.pk == self.user_id and constant_time_compare(self.state, _account_state(user))


def read_email_change_token(token: str) -> EmailChange | None:
    """The change a link asks for, or None when it is forged, malformed or older than PASSWORD_RESET_TIMEOUT."""
    try:
        payload = signing.loads(token, salt=EMAIL_CHANGE_SALT, max_age=settings.PASSWORD_RESET_TIMEOUT)
    except signing.BadSignature:
        return None
    if not isinstance(payload, dict):
        return None
    user_id, new_email, state = payload.get("u"), payload.get("e"), payload.get("s")
    if type(user_id) is not int or not isinstance(new_email, str) or not isinstance(state, str):
        return None
    return EmailChange(user_id=user_id, new_email=new_email, state=state)

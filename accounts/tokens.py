"""Signed, expiring tokens for links sent by email."""

from __future__ import annotations

from django.contrib.auth.tokens import PasswordResetTokenGenerator

from accounts.models import User


class EmailVerificationTokenGenerator(PasswordResetTokenGenerator):
    """Like a password-reset token (HMAC of the user's state and a timestamp, expiring after
    PASSWORD_RESET_TIMEOUT), for a different purpose: it covers the address and whether it is verified, so a
    link stops working once used, or when the address changes."""

    key_salt = "accounts.tokens.EmailVerificationTokenGenerator"

    def _make_hash_value(self, user: User, timestamp: int) -> str:
        return f"{user.pk}|{user.email.lower()}|{user.email_verified}|{timestamp}"


email_verification_token = EmailVerificationTokenGenerator()

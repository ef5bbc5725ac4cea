from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models import CharField
        from django.db.models.functions import Lower

        # username__lower=ci("Alice"): served by the lower(username) and lower(email) unique indexes.
        CharField.register_lookup(Lower)

        from accounts import throttling

        throttling.connect_signals()

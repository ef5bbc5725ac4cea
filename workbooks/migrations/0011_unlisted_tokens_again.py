"""Unlisted workbooks seeded after 0009 without a share token get one (the demo's bulk inserts skipped
``Workbook.save()``, which gives it; without a token an unlisted workbook could never be opened). The same
batched step as 0009; reversing leaves the tokens (they were missing by mistake, not by design).
"""

import secrets

from django.db import migrations

BATCH = 1000


def give_unlisted_tokens(apps, schema_editor):
    Workbook = apps.get_model("workbooks", "Workbook")
    while True:
        ids = list(
            Workbook.objects.filter(visibility="unlisted", share_token__isnull=True).values_list(
                "pk", flat=True
            )[:BATCH]
        )
        if not ids:
            return
        Workbook.objects.bulk_update(
            [Workbook(pk=pk, share_token=secrets.token_urlsafe(24)) for pk in ids], ["share_token"]
        )


class Migration(migrations.Migration):
    dependencies = [("workbooks", "0010_text_validators")]

    operations = [migrations.RunPython(give_unlisted_tokens, migrations.RunPython.noop, elidable=False)]

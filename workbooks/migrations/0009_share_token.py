"""Unlisted workbooks get an unguessable share token (issue 13, section 5).

The column is nullable and unique (a unique index, which also serves the token lookup of
``workbooks:shared``); the data step gives every existing unlisted workbook a token, in batches. Reversing
drops the tokens and then the column.
"""

import secrets

from django.db import migrations, models

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


def drop_tokens(apps, schema_editor):
    apps.get_model("workbooks", "Workbook").objects.exclude(share_token=None).update(share_token=None)


class Migration(migrations.Migration):
    dependencies = [("workbooks", "0008_embed_preview")]

    operations = [
        migrations.AddField(
            model_name="workbook",
            name="share_token",
            field=models.CharField(blank=True, editable=False, max_length=64, null=True, unique=True),
        ),
        migrations.RunPython(give_unlisted_tokens, drop_tokens, elidable=False),
    ]

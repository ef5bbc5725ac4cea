"""Seeds the replica test's own primary, in a subprocess against it: ``python -m tests.replicas.tool``.

Prints JSON: the workbooks' ids and URLs. ana wrote them, bob follows ana (so ana has an unread notification),
sam is staff.
"""

from __future__ import annotations

import json

import django

PASSWORD = "replica-test-pw-7"
EMBED = "https://app.sigmacomputing.com/embed/1-Replica{n}"


def main() -> None:
    django.setup()
    from accounts import services as accounts
    from workbooks import services as workbooks

    ana = accounts.user_create(username="ana", email="ana@example.com", password=PASSWORD)
    bob = accounts.user_create(username="bob", email="bob@example.com", password=PASSWORD)
    accounts.user_create(
        username="sam", email="sam@example.com", password=PASSWORD, is_staff=True, is_superuser=True
    )
    made = [
        workbooks.workbook_publish(
            author=ana, title=f"Replica workbook {n}", sigma_embed_url=EMBED.format(n=n), tags=["finance"]
        )
        for n in range(3)
    ]
    accounts.follow(follower=bob, followed=ana)
    print(json.dumps({"workbooks": [w.pk for w in made], "urls": [w.get_absolute_url() for w in made]}))


if __name__ == "__main__":
    main()

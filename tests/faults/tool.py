"""Set-up steps the fault suite runs in a subprocess against its own servers:
``python -m tests.faults.tool seed`` and ``python -m tests.faults.tool publish-with-thumbnail``."""

from __future__ import annotations

import json
import sys

import django


def main(command: str) -> None:
    django.setup()
    from accounts.models import User
    from tests import images
    from workbooks import services, thumbnails

    if command == "seed":
        author = User.objects.create_user(
            username="author", email="author@example.com", password="fault-author-pw"
        )
        reader = User.objects.create_user(
            username="reader", email="reader@example.com", password="fault-reader-pw1"
        )
        made = [
            services.workbook_publish(
                author=author,
                title=f"Fault workbook {n}",
                sigma_embed_url=f"https://app.sigmacomputing.com/embed/1-Fault{n}",
                tags=["faults"],
            )
            for n in range(4)
        ]
        print(
            json.dumps(
                {
                    "workbooks": [w.pk for w in made],
                    "urls": [w.get_absolute_url() for w in made],
                    "reader": reader.pk,
                }
            )
        )
    elif command == "publish-with-thumbnail":
        author = User.objects.get(username="author")
        master = thumbnails.prepare_master(images.upload(images.image_bytes("PNG", (1100, 619)), "shot.png"))
        workbook = services.workbook_publish(
            author=author,
            title="Fault thumbnail",
            sigma_embed_url="https://app.sigmacomputing.com/embed/1-FaultThumb",
            thumbnail=master,
        )
        print(json.dumps({"workbook": workbook.pk, "master": workbook.thumbnail}))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1])

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sigma_playground.settings")

django_application = get_wsgi_application()

# Import the URLconf and every view now, while the worker boots, not during its first request.
from django.urls import get_resolver  # noqa: E402

get_resolver().url_patterns  # noqa: B018

from sigma_playground.body_limit import BodySizeLimit  # noqa: E402
from sigma_playground.caching.front import CachedPageFront  # noqa: E402

# Bodies above REQUEST_BODY_MAX_BYTES are refused before they are read; anonymous cache hits are answered in
# front of Django's handler; everything else goes to Django.
application = BodySizeLimit(CachedPageFront(django_application))

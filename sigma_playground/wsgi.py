import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sigma_playground.settings")

application = get_wsgi_application()

# Import the URLconf and every view now, while the worker boots, not during its first request.
from django.urls import get_resolver  # noqa: E402

get_resolver().url_patterns  # noqa: B018

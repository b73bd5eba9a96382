import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

django_application = get_wsgi_application()

# Imported once Django is set up. Sold out, answered in front of Django (orders/soldout_edge.py),
# and every answer, Django's or the edge's, measured (config/metrics.py).
from config.metrics import RequestMetrics  # noqa: E402
from orders.soldout_edge import SoldOutEdge  # noqa: E402

application = RequestMetrics(SoldOutEdge(django_application))

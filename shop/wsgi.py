import os

from django.core.wsgi import get_wsgi_application

from shop.wsgi_input import ChunkedBodyMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
# Django reads a de-chunked body (Transfer-Encoding: chunked) as empty: the wrapper gives it its length.
application = ChunkedBodyMiddleware(get_wsgi_application())

from shop.warmup import warm  # noqa: E402 - reads models: only once the apps are loaded (above)

warm()  # before the first request: the active models, the category tree, the templates

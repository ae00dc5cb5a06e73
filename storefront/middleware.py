"""Visits that come through a shared link (``?ref=``) or with UTM parameters are
recorded once (`campaigns.social.visit_record`), remembered in the session (so a
later sign-up, login and order can be credited), and the visitor is redirected to
the same page without those parameters: a reload or a bookmark records nothing
twice, and the address bar shows the plain page."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import Resolver404, resolve

from campaigns.social import SHARE_PARAM, UTM_KEYS, utm_from, visit_record
from shop import selectors

SESSION_SHARES = "affinity.share_visits"
SESSION_TAGGED = "affinity.tagged_visits"
_KEEP = 5  # visits remembered per session (the last ones)
_SKIP = ("/admin/", "/api/", "/c/", "/static/", "/health/", "/img/", "/feeds/")
_PARAMS = (SHARE_PARAM, *UTM_KEYS)


def _remember(request: HttpRequest, key: str, value: int | None) -> None:
    if value is not None:
        request.session[key] = [*request.session.get(key, []), value][-_KEEP:]


class MarketingVisitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            request.method == "GET"
            and (SHARE_PARAM in request.GET or "utm_source" in request.GET)
            and not request.path.startswith(_SKIP)
        ):
            return self.capture(request)
        return self.get_response(request)

    def capture(self, request: HttpRequest) -> HttpResponse:
        if request.session.session_key is None:
            request.session.save()
        product_id = None
        try:
            match = resolve(request.path_info)
        except Resolver404:
            match = None
        if match is not None and match.view_name == "shop:product":
            item = selectors.product_get_for_page(slug=match.kwargs.get("slug", ""))
            product_id = item.pk if item is not None else None
        user = request.user if request.user.is_authenticated else None
        record = visit_record(
            share_ref=request.GET.get(SHARE_PARAM, "")[:200],
            utm=utm_from(request.GET),
            path=request.path,
            session_key=request.session.session_key or "",
            user=user,
            product_id=product_id,
        )
        _remember(request, SESSION_SHARES, record.share_visit_id)
        _remember(request, SESSION_TAGGED, record.tagged_visit_id)
        rest = [(k, v) for k, values in request.GET.lists() if k not in _PARAMS for v in values]
        target = request.path + (f"?{urlencode(rest)}" if rest else "")
        return HttpResponseRedirect(target)

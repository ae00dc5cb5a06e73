"""The live trends board in admin (admin/trends/): what is rising now, new products
beside the customers most likely to want them, and one click from such a row to a
draft campaign with that predicted audience.

The page is static; ``static/admin/js/trends-board.js`` polls the JSON views below
(no inline script: the CSP forbids it). The analytics are
``recommendations.services.trends_board`` / ``new_products`` / ``likely_buyers_many``;
the draft is ``campaigns.drafts.likely_buyers_draft``. Views only parse, check
permissions and present.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_POST

from recommendations import services as recommendations_services
from shop.models import User
from shop.numbers import int_parse

from .drafts import likely_buyers_draft
from .models import EmailTemplate
from .segments import MAX_LOOKALIKE

app_name = "trends"

DEFAULT_AUDIENCE = 200
POLL_SECONDS = 15  # how often the page asks for fresh figures (?poll=N overrides)
PREVIEW_ROWS = 20
BOARD_PERMS = ("campaigns.view_campaign",)
AUDIENCE_PERMS = ("campaigns.view_campaign", "shop.view_user")
DRAFT_PERMS = ("campaigns.add_campaign", "campaigns.add_segment")


def _require(request: HttpRequest, perms: tuple[str, ...]) -> None:
    if not request.user.has_perms(perms):
        raise PermissionDenied(f"needs the permissions {', '.join(perms)}")


def _bad(message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=400)


def _int(request: HttpRequest, name: str, default: int, low: int, high: int) -> int:
    raw = request.GET.get(name, "")
    if raw == "":
        return default
    value = int_parse(raw, minimum=low, maximum=high)
    if value is None:
        raise ValueError(f"{name}: must be a whole number between {low} and {high}, not {raw!r}")
    return value


@require_GET
def board_view(request: HttpRequest) -> HttpResponse:
    _require(request, BOARD_PERMS)
    context = {
        **admin.site.each_context(request),
        "title": "Live trends",
        "windows": [
            (h, f"{h // 24} days" if h >= 48 else f"{h} hours") for h in recommendations_services.TRENDS_WINDOW_HOURS
        ],
        "templates": list(EmailTemplate.objects.order_by("name").values("id", "name")),
        "default_audience": DEFAULT_AUDIENCE,
        "max_audience": MAX_LOOKALIKE,
        "can_see_customers": request.user.has_perms(AUDIENCE_PERMS),
        "can_draft": request.user.has_perms(DRAFT_PERMS),
        "poll_seconds": int_parse(request.GET.get("poll", ""), minimum=1, maximum=600) or POLL_SECONDS,
    }
    return TemplateResponse(request, "admin/trends/board.html", context)


@require_GET
def board_data(request: HttpRequest) -> JsonResponse:
    """The rising products and categories (polled by the page)."""
    _require(request, BOARD_PERMS)
    try:
        board = recommendations_services.trends_board(
            signal=request.GET.get("signal", "activity"),
            window_hours=_int(request, "window", 168, 1, 100_000),
            baseline_days=_int(request, "baseline", 56, 1, 100_000),
            size=_int(request, "size", 15, 1, 100_000),
        )
    except (ValueError, recommendations_services.TrendsError) as exc:
        return _bad(str(exc))
    return JsonResponse(board.as_dict())


def _audience_rows(user_ids: list[int], scores: list[float]) -> list[dict]:
    users = {
        u["pk"]: u
        for u in User.objects.filter(pk__in=user_ids).values(
            "pk", "email", "first_name", "last_name", "country", "marketing_consent"
        )
    }
    rows = []
    for uid, score in zip(user_ids, scores, strict=True):
        u = users.get(uid)
        if u is None:
            continue
        rows.append(
            {
                "id": uid,
                "email": u["email"],
                "name": f"{u['first_name']} {u['last_name']}".strip(),
                "country": u["country"],
                "consent": u["marketing_consent"],
                "score": round(score, 4),
                "url": reverse("admin:shop_user_change", args=[uid]),
            }
        )
    return rows


def _audience_summary(found: recommendations_services.LikelyBuyers, preview: int) -> dict:
    consenting = User.objects.filter(pk__in=found.user_ids, marketing_consent=True).count() if found.user_ids else 0
    return {
        "product": found.product_id,
        "method": found.method,
        "model": found.model,
        "count": len(found.user_ids),
        "consenting": consenting,
        "preview": _audience_rows(found.user_ids[:preview], found.scores[:preview]),
    }


@require_GET
def new_products_data(request: HttpRequest) -> JsonResponse:
    """New products (no history yet) with their predicted audience: the top few
    customers and how many the chosen audience size would reach."""
    _require(request, AUDIENCE_PERMS)
    try:
        size = _int(request, "size", DEFAULT_AUDIENCE, 1, MAX_LOOKALIKE)
        rows = recommendations_services.new_products(size=_int(request, "limit", 8, 1, 50))
        found = recommendations_services.likely_buyers_many(product_ids=[r.id for r in rows], size=size)
    except (ValueError, recommendations_services.TrendsError) as exc:
        return _bad(str(exc))
    return JsonResponse(
        {
            "size": size,
            "products": [
                {
                    "id": r.id,
                    "sku": r.sku,
                    "name": r.name,
                    "category": r.category,
                    "created_at": r.created_at.isoformat(),
                    "events": r.events,
                    "url": reverse("admin:shop_product_change", args=[r.id]),
                    "audience": _audience_summary(found[r.id], 5),
                }
                for r in rows
            ],
        }
    )


@require_GET
def audience_data(request: HttpRequest) -> JsonResponse:
    """One product's predicted audience of ``size``: who would get the campaign."""
    _require(request, AUDIENCE_PERMS)
    try:
        product_id = _int(request, "product", 0, 1, 2**63 - 1)
        if not product_id:
            raise ValueError("product: is required (a product id)")
        size = _int(request, "size", DEFAULT_AUDIENCE, 1, MAX_LOOKALIKE)
        found = recommendations_services.likely_buyers(product_id=product_id, size=size)
    except (ValueError, recommendations_services.TrendsError) as exc:
        return _bad(str(exc))
    return JsonResponse({"size": size, **_audience_summary(found, PREVIEW_ROWS)})


@require_POST
def draft_view(request: HttpRequest) -> HttpResponse:
    """One click: a draft campaign to a product's likely buyers; then its admin page."""
    _require(request, DRAFT_PERMS)
    board = reverse("trends:board")
    product_id = int_parse(request.POST.get("product", ""), minimum=1)
    size = int_parse(request.POST.get("size", ""), minimum=1, maximum=MAX_LOOKALIKE)
    template_id = int_parse(request.POST.get("template", ""), minimum=1)
    problems = []
    if product_id is None:
        problems.append(f"product: must be a product id, not {request.POST.get('product', '')!r}")
    if size is None:
        problems.append(f"size: must be a whole number between 1 and {MAX_LOOKALIKE}")
    if problems:
        messages.error(request, "Cannot draft the campaign: " + "; ".join(problems))
        return HttpResponseRedirect(board)
    assert product_id is not None and size is not None
    try:
        campaign = likely_buyers_draft(
            product_id=product_id,
            size=size,
            template_id=template_id,
            created_by=request.user if isinstance(request.user, User) else None,
        )
    except ValidationError as exc:
        detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
        messages.error(request, f"Cannot draft the campaign: {detail}")
        return HttpResponseRedirect(board)
    messages.success(
        request,
        f"Draft campaign “{campaign.name}” created for segment “{campaign.segment}”. "
        "Review it, preview the email and schedule it when ready.",
    )
    return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))


def _staff(view):
    return admin.site.admin_view(view)


urlpatterns = [
    path("", _staff(board_view), name="board"),
    path("data.json", _staff(board_data), name="data"),
    path("new-products.json", _staff(new_products_data), name="new-products"),
    path("audience.json", _staff(audience_data), name="audience"),
    path("draft/", _staff(draft_view), name="draft"),
]

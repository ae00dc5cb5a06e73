"""The products each recipient gets: the campaigns' view of the recommendations
service (``recommendations.services``) -- batched picks for an audience, one
customer's picks for a preview, exclusions, and the product snapshot stored on each
delivery. How a product looks in an email is `campaigns.rendering.product_context`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from recommendations import services as recommendations_services
from shop.models import Product, User

AUTO = "auto"


def strategy_arg(strategy: str) -> str | None:
    """The contract's ``strategy`` argument: None means the active model ("auto")."""
    return None if not strategy or strategy == AUTO else strategy


def strategy_error(strategy: str) -> str | None:
    """Why ``strategy`` cannot be used, or None. Asks the service itself, so the list
    of names is never copied here."""
    try:
        recommendations_services.strategy_check(strategy_arg(strategy))
    except ValueError as exc:
        return str(exc) or f"unknown strategy {strategy!r}"
    return None


@dataclass(frozen=True)
class Exclusions:
    category_ids: frozenset[int] = frozenset()
    product_ids: frozenset[int] = frozenset()
    exclude_purchased: bool = True


def product_snapshot(product: Product, *, reason: str = "", reason_code: str = "", score: float = 0.0) -> dict:
    """What a delivery keeps of a recommended product (JSON; enough to render again)."""
    return {
        "id": product.pk,
        "sku": product.sku,
        "name": product.name,
        "slug": product.slug,
        "price": str(product.price),
        "currency": product.currency,
        "image_url": product.image_url,
        "category": product.category.name if product.category_id and product.category else "",
        "reason": reason,
        "reason_code": reason_code,
        "score": round(float(score), 6),
    }


def _keep(pick, exclusions: Exclusions, per_user_excluded: Iterable[int] = ()) -> bool:
    product = pick.product
    return (
        product.category_id not in exclusions.category_ids
        and product.pk not in exclusions.product_ids
        and product.pk not in per_user_excluded
    )


def picks_for_users(
    *,
    user_ids: Sequence[int],
    strategy: str,
    n: int,
    exclusions: Exclusions,
    excluded_by_user: dict[int, set[int]] | None = None,
) -> dict[int, list[dict]]:
    """Snapshots of up to ``n`` picks for each customer (batched scoring, no
    impressions). Asks for extra picks so that exclusions still leave ``n``."""
    if not user_ids:
        return {}
    excluded_by_user = excluded_by_user or {}
    extra = len(exclusions.product_ids) + max((len(v) for v in excluded_by_user.values()), default=0)
    ask = n + min(50, extra + (n if exclusions.category_ids else 0))
    raw = recommendations_services.recommend_for_users_batch(
        user_ids=list(user_ids),
        n=ask,
        strategy=strategy_arg(strategy),
        exclude_purchased=exclusions.exclude_purchased,
    )
    out: dict[int, list[dict]] = {}
    for uid in user_ids:
        picks = [p for p in raw.get(uid, []) if _keep(p, exclusions, excluded_by_user.get(uid, ()))][:n]
        out[uid] = [
            product_snapshot(p.product, reason=p.reason, reason_code=p.reason_code, score=p.score) for p in picks
        ]
    return out


def picks_for_preview(
    *, user: User, strategy: str, n: int, exclusions: Exclusions, excluded: Iterable[int] = ()
) -> tuple[list[dict], str]:
    """One customer's picks for a preview (context "email", no impression recorded)."""
    excluded = set(excluded) | set(exclusions.product_ids)
    result = recommendations_services.recommend_for_user(
        user=user,
        context="email",
        n=n + min(50, len(excluded) + (n if exclusions.category_ids else 0)),
        strategy=strategy_arg(strategy),
        exclude_product_ids=sorted(excluded),
        record_impression=False,
    )
    picks = [p for p in result.picks if _keep(p, exclusions, excluded)][:n]
    return (
        [product_snapshot(p.product, reason=p.reason, reason_code=p.reason_code, score=p.score) for p in picks],
        result.strategy,
    )

"""Email templates: compile, validate, render with a safe context, build the message.

Templates use Django's template language in an engine of their own: no template
loaders (``include``/``extends`` cannot reach files), no ``debug`` tag, only the
built-in tags and filters plus ``humanize``. The context holds plain values only
(strings, numbers, lists and dicts built here), never model instances, so a template
can show a customer's first name but cannot walk to their password hash or call a
method. The HTML body is autoescaped; subject and text body are not (they are not
HTML) and the subject is folded onto one line.

Context of every email (see `sample_context`):
``customer`` (first_name, last_name, name, email), ``greeting_name``,
``products`` (name, price, currency, price_display, image_url, url, reason, category),
``cart_items`` (abandoned cart), ``order`` (post-purchase), ``viewed_items`` (browse
abandonment), ``restocked_items`` (back in stock), ``price_drop_items`` (price drop:
each with ``old_price_display``), ``campaign`` (name),
``unsubscribe_url``, ``preferences_url``, ``shop_url``, ``site_url``.
An open pixel is added to the HTML automatically.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from email.utils import make_msgid, parseaddr
from functools import lru_cache

from django.conf import settings
from django.template import Context, Engine, Template, TemplateSyntaxError
from django.template.defaulttags import DebugNode
from django.template.loader_tags import ExtendsNode, IncludeNode

from shop.models import Product

from . import social, tokens
from .mime import CampaignEmail
from .models import Campaign
from .products import product_snapshot

LIBRARIES = {"humanize": "django.contrib.humanize.templatetags.humanize"}
_HTML_ENGINE = Engine(loaders=[], libraries=LIBRARIES, autoescape=True, debug=True, string_if_invalid="")
_TEXT_ENGINE = Engine(loaders=[], libraries=LIBRARIES, autoescape=False, debug=True, string_if_invalid="")
_FORBIDDEN = {IncludeNode: "include", ExtendsNode: "extends", DebugNode: "debug"}
_UNSUB_SENTINEL = "https://unsubscribe.sentinel.invalid/u/XYZ/"
CURRENCY_SYMBOLS = {"GBP": "£", "EUR": "€", "USD": "$", "JPY": "¥"}


class TemplateInvalid(ValueError):
    """A template that does not compile or render; ``errors`` maps field -> messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class CompiledEmail:
    subject: Template
    html: Template
    text: Template


def _compile(source: str, engine: Engine) -> Template:
    """Compile or raise ``ValueError`` with a message a staff member can act on."""
    try:
        template = engine.from_string(source)
    except TemplateSyntaxError as exc:
        message = str(exc)
        info = getattr(exc, "template_debug", None)
        if info and "line" not in message:
            message = f"line {info['line']}: {message}"
        raise ValueError(message) from None
    for node_class, name in _FORBIDDEN.items():
        if template.nodelist.get_nodes_by_type(node_class):
            raise ValueError(f"the {{% {name} %}} tag is not allowed in email templates")
    return template


def template_errors(
    *, subject: str | None = None, html_body: str | None = None, text_body: str | None = None
) -> dict[str, list[str]]:
    """Problems of each given part: syntax (with the line), forbidden tags, errors
    when rendered with a sample context, and a missing unsubscribe link in a body."""
    errors: dict[str, list[str]] = {}
    context = sample_context()
    context["unsubscribe_url"] = _UNSUB_SENTINEL
    parts = (
        ("subject", subject, _TEXT_ENGINE),
        ("html_body", html_body, _HTML_ENGINE),
        ("text_body", text_body, _TEXT_ENGINE),
    )
    for field, source, engine in parts:
        if source is None:
            continue
        if field == "subject" and ("\n" in source or "\r" in source):
            errors[field] = ["the subject is one line"]
            continue
        if not source.strip():
            errors[field] = ["must not be empty"]
            continue
        try:
            template = _compile(source, engine)
            output = template.render(Context(context, autoescape=engine is _HTML_ENGINE))
        except ValueError as exc:
            errors[field] = [str(exc)]
            continue
        except Exception as exc:  # noqa: BLE001 - any render error is the template's fault
            errors[field] = [f"does not render: {type(exc).__name__}: {exc}"]
            continue
        if field == "subject" and not _one_line(output):
            errors[field] = ["renders to an empty subject"]
        if field != "subject" and _UNSUB_SENTINEL not in output:
            errors[field] = ["must contain the unsubscribe link: {{ unsubscribe_url }}"]
    return errors


@lru_cache(maxsize=64)
def email_compile(*, subject: str, html_body: str, text_body: str) -> CompiledEmail:
    """Compiled parts of a template (cached by their text); raises `TemplateInvalid`."""
    errors: dict[str, list[str]] = {}
    compiled = {}
    for field, source, engine in (
        ("subject", subject, _TEXT_ENGINE),
        ("html_body", html_body, _HTML_ENGINE),
        ("text_body", text_body, _TEXT_ENGINE),
    ):
        try:
            compiled[field] = _compile(source, engine)
        except ValueError as exc:
            errors[field] = [str(exc)]
    if errors:
        raise TemplateInvalid(errors)
    return CompiledEmail(subject=compiled["subject"], html=compiled["html_body"], text=compiled["text_body"])


_WS = re.compile(r"\s+")
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


def _one_line(text: str) -> str:
    return _WS.sub(" ", text).strip()


def _plain(rendered: str) -> str:
    """A render's output as a plain ``str``. Django marks what a template renders safe
    (``SafeString``); a rendered part is text of its own, and a page that shows it (a
    preview, an iframe's ``srcdoc``) must escape it like any other text."""
    return str.__str__(rendered)


def email_render(compiled: CompiledEmail, context: dict, *, open_pixel_url: str = "") -> RenderedEmail:
    # A Context escapes unless told otherwise, whatever the engine says: only HTML is HTML.
    subject = _one_line(compiled.subject.render(Context(context, autoescape=False)))[:998]
    text = _plain(compiled.text.render(Context(context, autoescape=False)))
    html = _plain(compiled.html.render(Context(context, autoescape=True)))
    if open_pixel_url:
        pixel = (
            f'<img src="{open_pixel_url}" width="1" height="1" alt="" '
            f'style="display:block;width:1px;height:1px;border:0">'
        )
        matches = list(_BODY_END.finditer(html))
        html = f"{html[: matches[-1].start()]}{pixel}{html[matches[-1].start() :]}" if matches else html + pixel
    return RenderedEmail(subject=subject, text=text, html=html)


# --- context ------------------------------------------------------------------------------
@lru_cache(maxsize=4096)
def price_display(price, currency: str) -> str:
    amount = Decimal(str(price)).quantize(Decimal("0.01"))
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{amount:,}" if symbol else f"{amount:,} {currency}"


def customer_context(*, first_name: str, last_name: str, email: str) -> dict:
    return {
        "first_name": first_name,
        "last_name": last_name,
        "email": email,
        "name": f"{first_name} {last_name}".strip() or email,
    }


def product_context(snapshot: dict, *, delivery_id: int | None) -> dict:
    """A product as a template sees it: plain values and a tracked link."""
    if delivery_id is not None:
        url = tokens.click_url(delivery_id, product_id=snapshot["id"])
    else:
        url = tokens.absolute(tokens.product_path(product_id=snapshot["id"], slug=snapshot.get("slug", "")))
    return {
        "name": snapshot["name"],
        "price": snapshot["price"],
        "currency": snapshot["currency"],
        "price_display": price_display(snapshot["price"], snapshot["currency"]),
        "image_url": _image_url(snapshot["id"], snapshot.get("image_url", "")),
        "url": url,
        "reason": snapshot.get("reason", ""),
        "reason_code": snapshot.get("reason_code", ""),
        "category": snapshot.get("category", ""),
    }


@lru_cache(maxsize=4096)
def _image_url_cached(product_id: int, image_url: str, site: str) -> str:
    return tokens.product_image_url(product_id=product_id, image_url=image_url)


def _image_url(product_id: int, image_url: str) -> str:
    return _image_url_cached(product_id, image_url, settings.SITE_URL)


def _item_context(product: Product, quantity: int | None = None) -> dict:
    snapshot = product_snapshot(product)
    out = product_context(snapshot, delivery_id=None)
    if quantity is not None:
        out["quantity"] = quantity
    return out


def email_context(
    *,
    user: dict,
    products: list[dict],
    kind: str = Campaign.Kind.ONE_OFF,
    campaign_name: str = "",
    campaign_id: int | None = None,
    delivery_id: int | None = None,
    context_data: dict | None = None,
    items: dict[int, Product] | None = None,
) -> dict:
    """The safe context of one email: plain values and signed links only. Without a
    delivery (previews, test sends) links are untracked. Every link to the store
    carries UTM parameters (utm_source=affinity, utm_medium=email, utm_campaign=
    "<name>-c<id>", utm_content: which link)."""
    context_data = context_data or {}
    items = items or {}
    utm_campaign = social.utm_campaign_value(campaign_id=campaign_id, name=campaign_name)
    product_ctx = [product_context(p, delivery_id=delivery_id) for p in products]
    for ctx, p in zip(product_ctx, products, strict=True):
        ctx["url"] = social.with_utm(ctx["url"], campaign=utm_campaign, content=f"product-{p['id']}")
    item_ctx = []
    for pid in context_data.get("product_ids", ()):
        product = items.get(pid)
        if product is None:
            continue
        item = _item_context(product)
        if delivery_id is not None:
            item["url"] = tokens.click_url(delivery_id, product_id=pid)
        item["url"] = social.with_utm(item["url"], campaign=utm_campaign, content=f"product-{pid}")
        item_ctx.append(item)
    customer = customer_context(
        first_name=user.get("first_name", ""), last_name=user.get("last_name", ""), email=user.get("email", "")
    )
    home = tokens.home_path()
    order = {}
    if context_data.get("order_id"):
        total, currency = context_data.get("order_total", "0"), context_data.get("currency", "GBP")
        order = {
            "number": str(context_data.get("order_number", ""))[:8],
            "total": total,
            "total_display": price_display(total, currency),
        }
    return {
        "customer": customer,
        "greeting_name": customer["first_name"] or "there",
        "products": product_ctx,
        "cart_items": item_ctx if kind == Campaign.Kind.ABANDONED_CART else [],
        "order_items": item_ctx if kind == Campaign.Kind.POST_PURCHASE else [],
        "viewed_items": item_ctx if kind == Campaign.Kind.BROWSE_ABANDONMENT else [],
        "restocked_items": item_ctx if kind == Campaign.Kind.BACK_IN_STOCK else [],
        "price_drop_items": _price_drop_items(item_ctx, context_data) if kind == Campaign.Kind.PRICE_DROP else [],
        "order": order,
        "campaign": {"name": campaign_name},
        "unsubscribe_url": tokens.unsubscribe_url(delivery_id)
        if delivery_id is not None
        else tokens.absolute("/c/u/preview-only/"),
        "preferences_url": social.with_utm(tokens.preferences_url(), campaign=utm_campaign, content="preferences"),
        "shop_url": social.with_utm(
            tokens.click_url(delivery_id, path=home) if delivery_id is not None else tokens.absolute(home),
            campaign=utm_campaign,
            content="shop",
        ),
        "site_url": tokens.absolute(""),
    }


def _price_drop_items(items: list[dict], context_data: dict) -> list[dict]:
    """The cheaper product(s) of a price-drop email, with the price before the drop."""
    before = context_data.get("price_before")
    if before is None:
        return items
    return [{**item, "old_price_display": price_display(before, item.get("currency", "GBP"))} for item in items]


def sample_context() -> dict:
    """A context with every variable set, for validation and the admin's help."""
    product = {
        "name": "White hanging heart T-light holder",
        "price": "2.95",
        "currency": "GBP",
        "price_display": "£2.95",
        "image_url": "https://example.invalid/img/p/1.svg",
        "url": "https://example.invalid/c/k/token/",
        "reason": "Because you bought Red retrospot cake stand",
        "reason_code": "history",
        "category": "Home decor",
    }
    return {
        "customer": customer_context(first_name="Ada", last_name="Lovelace", email="ada@example.invalid"),
        "greeting_name": "Ada",
        "products": [
            product,
            {
                **product,
                "name": "Jumbo bag red retrospot",
                "price": "1.95",
                "price_display": "£1.95",
                "image_url": "",
                "reason": "Trending now",
                "reason_code": "trending",
            },
        ],
        "cart_items": [{**product, "quantity": 2}],
        "viewed_items": [product],
        "restocked_items": [product],
        "price_drop_items": [{**product, "old_price_display": "£3.95"}],
        "order": {"number": "5f1c2a9e", "total": "12.40", "total_display": "£12.40"},
        "campaign": {"name": "Sample campaign"},
        "unsubscribe_url": "https://example.invalid/c/u/token/",
        "preferences_url": "https://example.invalid/account/preferences/",
        "shop_url": "https://example.invalid/",
        "site_url": "https://example.invalid",
    }


# --- the message ----------------------------------------------------------------------------
def message_id_domain() -> str:
    address = parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    return address.rpartition("@")[2] or "affinity.invalid"


def message_id_make(delivery_id: int) -> str:
    """A globally unique Message-ID, fixed (and stored) before the first send attempt."""
    return make_msgid(idstring=f"d{delivery_id}", domain=message_id_domain())


def list_unsubscribe_header(*, https_url: str, delivery_id: int) -> str:
    """RFC 2369 List-Unsubscribe: an https URL for one-click (RFC 8058) and, if
    configured, a mailto address as well."""
    parts = []
    mailto = getattr(settings, "CAMPAIGNS_UNSUBSCRIBE_MAILTO", "")
    if mailto:
        parts.append(f"<mailto:{mailto}?subject=unsubscribe-{delivery_id}>")
    parts.append(f"<{https_url}>")
    return ", ".join(parts)


def message_build(
    *,
    to: str,
    rendered: RenderedEmail,
    message_id: str,
    unsubscribe_url: str,
    delivery_id: int | None = None,
    from_email: str = "",
    connection=None,
    extra_headers: dict | None = None,
) -> CampaignEmail:
    """A multipart/alternative email (text, then HTML) with Message-ID and the
    one-click unsubscribe headers."""
    headers = {
        "Message-ID": message_id,
        "List-Unsubscribe": list_unsubscribe_header(https_url=unsubscribe_url, delivery_id=delivery_id or 0),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    if delivery_id is not None:
        headers["X-Affinity-Delivery"] = str(delivery_id)
    headers.update(extra_headers or {})
    msg = CampaignEmail(
        subject=rendered.subject,
        body=rendered.text,
        from_email=from_email or settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers=headers,
        connection=connection,
    )
    msg.attach_alternative(rendered.html, "text/html")
    # Read by django-anymail backends (ESP metadata comes back on tracking webhooks);
    # ignored by the SMTP and outbox backends.
    if delivery_id is not None:
        msg.metadata = {"delivery_id": str(delivery_id)}
    return msg

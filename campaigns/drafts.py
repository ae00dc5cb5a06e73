"""Campaign drafts made in one click from the live trends board: a product's predicted
audience ("likely buyers of product X, top N", the segment rule ``likely_buyers``)
becomes a segment and a DRAFT one-off campaign that staff review, preview and
schedule like any other (nothing is sent from here)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from shop.models import Product, User

from .models import Campaign, EmailTemplate, Segment
from .segments import MAX_LOOKALIKE, RuleError, rules_validate
from .services import campaign_create

NAME_MAX = 200
SUBJECT_MAX = 255


def likely_buyers_rules(*, product_id: int, size: int) -> dict:
    """The segment rule tree of a product's predicted audience."""
    return {"rule": "likely_buyers", "product": int(product_id), "size": int(size)}


def draft_subject(name: str) -> str:
    """The draft's subject line, naming the product ("New: <name>"); blank (the
    template's subject) when the name holds template syntax characters, which the
    subject -- a template -- would otherwise interpret."""
    if any(c in name for c in "{}%#"):
        return ""
    return f"New: {name}"[:SUBJECT_MAX]


def _segment_for(product: Product, rules: dict, size: int, created_by: User | None) -> Segment:
    """The segment holding ``rules``: an existing one with the same rules, or a new one
    named after the product (numbered when the name is taken)."""
    same = Segment.objects.filter(rules=rules).order_by("pk").first()
    if same is not None:
        return same
    base = f"Likely buyers of {product.name} ({product.sku}), top {size}"
    name, n = base[:NAME_MAX], 2
    while Segment.objects.filter(name=name).exists():
        suffix = f" #{n}"
        name, n = base[: NAME_MAX - len(suffix)] + suffix, n + 1
    return Segment.objects.create(
        name=name,
        rules=rules,
        description=f"The {size} customers most likely to want {product.name} (made on the trends board).",
        created_by=created_by,
    )


def likely_buyers_draft(
    *, product_id: int, size: int, template_id: int | None, created_by: User | None = None
) -> Campaign:
    """A draft one-off campaign to the ``size`` likely buyers of a product. Raises
    ``ValidationError`` naming what was wrong (unknown product or template, a size
    out of range)."""
    product = Product.objects.filter(pk=product_id).first()
    if product is None:
        raise ValidationError({"product": f"unknown product {product_id!r}"})
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_LOOKALIKE:
        raise ValidationError({"size": f"must be a whole number between 1 and {MAX_LOOKALIKE}, not {size!r}"})
    template = EmailTemplate.objects.filter(pk=template_id).first() if template_id is not None else None
    if template is None:
        raise ValidationError(
            {"template": "choose an email template (create one under Campaigns › Email templates first)"}
        )
    rules = likely_buyers_rules(product_id=product.pk, size=size)
    try:
        rules_validate(rules)
    except RuleError as exc:
        raise ValidationError({"segment": exc.messages}) from exc
    with transaction.atomic():
        segment = _segment_for(product, rules, size, created_by)
        return campaign_create(
            name=f"New: {product.name}"[:NAME_MAX],
            template=template,
            segment=segment,
            kind=Campaign.Kind.ONE_OFF,
            variants=[{"name": "A", "subject": draft_subject(product.name)}],
            created_by=created_by,
        )

"""Customers: registration, consent (recorded as evidence), interests, profile edits,
sync from another system, and erasure (GDPR)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from shop.models import Category, ConsentChange, Interaction, Order, User
from shop.signals import user_forgotten

from .errors import RowError, ValidationFailed

logger = logging.getLogger(__name__)


def user_consent_set(*, user: User, consent: bool, source: str, at: datetime | None = None) -> bool:
    """Set marketing consent and record the change. Returns whether it changed."""
    at = at or timezone.now()
    if user.marketing_consent == consent and user.consent_changed_at is not None:
        return False
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(marketing_consent=consent, consent_changed_at=at)
        ConsentChange.objects.create(user=user, consent=consent, source=source, changed_at=at)
    user.marketing_consent, user.consent_changed_at = consent, at
    logger.info("consent of user %s set to %s via %s", user.pk, consent, source)
    return True


def user_register(
    *,
    email: str,
    password: str | None,
    first_name: str = "",
    last_name: str = "",
    country: str = "",
    interests: Iterable[Category] = (),
    marketing_consent: bool = False,
    external_id: str | None = None,
    consent_source: str = ConsentChange.Source.SIGNUP,
) -> User:
    """Create a customer with their interests and consent (the consent is recorded)."""
    email = User.objects.normalize_email(email).lower()
    with transaction.atomic():
        user = User.objects.create_user(
            email=email,
            password=password,
            first_name=first_name,
            last_name=last_name,
            country=country,
            external_id=external_id,
        )
        user.interests.set(list(interests))
        user_consent_set(user=user, consent=marketing_consent, source=consent_source)
    return user


def user_interests_set(*, user: User, categories: Iterable[Category]) -> None:
    user.interests.set(list(categories))


def user_forget(*, user: User) -> None:
    """Delete a customer and everything they did (GDPR erasure).

    Interactions, cart and consent history go with the account; orders stay for the
    accounts but lose the link to the person. Listeners of `user_forgotten` (the
    recommendations app) drop what they derived from the customer in the same
    transaction, so nothing they did feeds a recommendation from this moment.
    """
    with transaction.atomic():
        user_forgotten.send(sender=User, user_id=user.pk)
        Order.objects.filter(user=user).update(user=None, country="")
        Interaction.objects.filter(user=user).delete()
        user.delete()
    logger.info("user %s forgotten", user.pk)


def user_preferences_update(
    *,
    user: User,
    marketing_consent: bool,
    interests: Iterable[Category],
    source: str = ConsentChange.Source.PREFERENCES,
) -> bool:
    """Save a customer's email preferences and interests in one transaction.

    A consent change is recorded as evidence (`ConsentChange` with ``source``); an
    unchanged consent records nothing. Returns whether the consent changed.
    """
    with transaction.atomic():
        changed = user_consent_set(user=user, consent=marketing_consent, source=source)
        user_interests_set(user=user, categories=interests)
    return changed


# --- API: customers synced from another system, profile edits. ``None`` means "leave as it is".
def _email_taken(email: str, *, exclude_pk: int | None = None) -> bool:
    qs = User.objects.filter(email=email)
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    return qs.exists()


def user_profile_update(
    *,
    user: User,
    email: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    country: str | None = None,
    interests: Iterable[Category] | None = None,
    marketing_consent: bool | None = None,
    consent_source: str = ConsentChange.Source.API,
) -> User:
    """Change a customer's profile; a consent change is recorded with ``consent_source``.

    Raises `ValidationFailed` (field ``email``, code ``unique``) when the new email
    belongs to another account; nothing is written then.
    """
    changes: dict[str, str] = {}
    if email is not None:
        email = User.objects.normalize_email(email).lower()
        if email != user.email:
            if _email_taken(email, exclude_pk=user.pk):
                raise ValidationFailed([RowError(0, "email", "another account has this email address", "unique")])
            changes["email"] = email
    for name, value in (("first_name", first_name), ("last_name", last_name), ("country", country)):
        if value is not None and value != getattr(user, name):
            changes[name] = value
    try:
        with transaction.atomic():
            if changes:
                User.objects.filter(pk=user.pk).update(**changes)
                for name, value in changes.items():
                    setattr(user, name, value)
            if interests is not None:
                user_interests_set(user=user, categories=interests)
            if marketing_consent is not None:
                user_consent_set(user=user, consent=marketing_consent, source=consent_source)
    except IntegrityError as exc:  # a concurrent sign-up took the email
        raise ValidationFailed([RowError(0, "email", "another account has this email address", "unique")]) from exc
    return user


def customer_create(
    *,
    email: str,
    external_id: str | None = None,
    first_name: str = "",
    last_name: str = "",
    country: str = "",
    interests: Iterable[Category] = (),
    marketing_consent: bool = False,
    consent_source: str = ConsentChange.Source.API,
) -> User:
    """Create a customer account without a password (they can set one by resetting it).

    Raises `ValidationFailed` when the email or the external id is already in use.
    """
    email = User.objects.normalize_email(email).lower()
    errors = []
    if _email_taken(email):
        errors.append(RowError(0, "email", "another account has this email address", "unique"))
    if external_id and User.objects.filter(external_id=external_id).exists():
        errors.append(RowError(0, "external_id", "another account has this external id", "unique"))
    if errors:
        raise ValidationFailed(errors)
    try:
        return user_register(
            email=email,
            password=None,
            first_name=first_name,
            last_name=last_name,
            country=country,
            interests=interests,
            marketing_consent=marketing_consent,
            external_id=external_id or None,
            consent_source=consent_source,
        )
    except IntegrityError as exc:  # lost a race with a concurrent create
        raise ValidationFailed(
            [RowError(0, "email", "another account has this email or external id", "unique")]
        ) from exc


def customer_upsert(
    *,
    external_id: str,
    email: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    country: str | None = None,
    interests: Iterable[Category] | None = None,
    marketing_consent: bool | None = None,
    consent_source: str = ConsentChange.Source.API,
) -> tuple[User, bool]:
    """Create or update the customer known as ``external_id`` in another system
    (idempotent sync). Returns ``(user, created)``. Creating needs an ``email``.

    Only customer accounts are touched: an external id held by a staff account is
    refused, so that a sync can never change who administers the store.
    """
    if not external_id or len(external_id) > 64:
        raise ValidationFailed([RowError(0, "external_id", "1 to 64 characters", "invalid")])
    with transaction.atomic():
        user = User.objects.select_for_update().filter(external_id=external_id).first()
        if user is not None and (user.is_staff or user.is_superuser):
            raise ValidationFailed([RowError(0, "external_id", "belongs to a staff account", "forbidden")])
        if user is None:
            if not email:
                raise ValidationFailed([RowError(0, "email", "required to create a customer", "required_to_create")])
            return customer_create(
                email=email,
                external_id=external_id,
                first_name=first_name or "",
                last_name=last_name or "",
                country=country or "",
                interests=interests or (),
                marketing_consent=bool(marketing_consent),
                consent_source=consent_source,
            ), True
        return user_profile_update(
            user=user,
            email=email,
            first_name=first_name,
            last_name=last_name,
            country=country,
            interests=interests,
            marketing_consent=marketing_consent,
            consent_source=consent_source,
        ), False

"""The store's domain: customers, catalogue, interactions, carts and orders.

Rules that must always hold are database constraints, not only form validation.
`Interaction` rows are written only by `shop.services`.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models import Q
from django.utils import timezone

from shop.event_time import EVENTS_EARLIEST, EVENTS_IMPOSSIBLE


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        if not extra["is_staff"] or not extra["is_superuser"]:
            raise ValueError("A superuser must have is_staff=True and is_superuser=True.")
        return self._create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A customer or a staff member; logs in with their email address."""

    email = models.EmailField("email address", unique=True)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    country = models.CharField(max_length=64, blank=True, db_index=True)
    external_id = models.CharField(
        max_length=64,
        unique=True,
        null=True,
        blank=True,
        help_text="The customer's id in another system (import, API sync).",
    )
    interests = models.ManyToManyField("Category", blank=True, related_name="interested_users")
    marketing_consent = models.BooleanField(default=False)
    consent_changed_at = models.DateTimeField(null=True, blank=True)
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now, db_index=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["marketing_consent", "is_active"])]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or self.email

    def get_short_name(self) -> str:
        return self.first_name or self.email


class ConsentChange(models.Model):
    """Every change of a customer's marketing consent, kept as evidence."""

    class Source(models.TextChoices):
        SIGNUP = "signup", "Sign-up"
        PREFERENCES = "preferences", "Email preferences"
        UNSUBSCRIBE = "unsubscribe", "Unsubscribe link"
        ADMIN = "admin", "Admin"
        API = "api", "API"
        IMPORT = "import", "Import"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="consent_changes")
    consent = models.BooleanField()
    source = models.CharField(max_length=16, choices=Source.choices)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.user} {'opted in' if self.consent else 'opted out'} ({self.source})"


class Category(models.Model):
    """A node of the category tree."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=120, unique=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    description = models.TextField(blank=True)
    colour = models.CharField(
        max_length=7, default="#5b6c8f", help_text="Hex colour of the category's placeholder images."
    )
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        verbose_name_plural = "categories"
        ordering = ["position", "name"]
        constraints = [
            models.UniqueConstraint(fields=["parent", "name"], name="category_unique_name_per_parent"),
            models.CheckConstraint(condition=Q(colour__regex=r"^#[0-9a-fA-F]{6}$"), name="category_colour_hex"),
        ]

    def __str__(self) -> str:
        return self.name

    def ancestors(self) -> list[Category]:
        chain, node = [], self.parent
        while node is not None:
            chain.append(node)
            node = node.parent
        return list(reversed(chain))


# Products that can be sold now as far as stock goes: untracked stock (NULL) or some units.
PRODUCT_IN_STOCK = Q(stock__isnull=True) | Q(stock__gt=0)


class Product(models.Model):
    sku = models.CharField("SKU", max_length=64, unique=True)
    name = models.CharField(max_length=255)
    slug = models.SlugField(max_length=300, unique=True)
    description = models.TextField(blank=True)
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="products")
    price = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="GBP")
    stock = models.IntegerField(
        null=True, blank=True, default=0, help_text="Units in stock; empty: stock not tracked (always available)."
    )
    is_active = models.BooleanField(default=True)
    attributes = models.JSONField(default=dict, blank=True)
    image_url = models.URLField(blank=True, help_text="Leave empty for a generated placeholder.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=Decimal("0")), name="product_price_non_negative"),
            models.CheckConstraint(
                condition=Q(stock__isnull=True) | Q(stock__gte=0), name="product_stock_non_negative"
            ),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="product_currency_iso"),
        ]
        indexes = [models.Index(fields=["category", "is_active"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"

    @property
    def stock_tracked(self) -> bool:
        return self.stock is not None

    @property
    def in_stock(self) -> bool:
        """True when untracked (NULL stock) or with at least one unit."""
        return self.stock is None or self.stock > 0

    def has_stock_for(self, quantity: int) -> bool:
        """Can ``quantity`` units be sold? Always when stock is not tracked."""
        return self.stock is None or self.stock >= quantity


class InteractionQuerySet(models.QuerySet["Interaction"]):
    def settled(self, now: datetime | None = None) -> InteractionQuerySet:
        """Events dated no later than "now" plus the clients' allowed clock skew.

        The edge refuses a later time, but a row written around it (raw SQL, a restored
        dump) would otherwise become "the newest event" that windows are measured from,
        and weigh as the freshest history in training's time decay. Readers that take the
        newest time or weigh by age read through this."""
        limit = (now or timezone.now()) + timedelta(seconds=settings.INTERACTION_MAX_FUTURE_SECONDS)
        return self.filter(occurred_at__lte=limit)


class Interaction(models.Model):
    """One thing a shopper did with a product. Written only by `shop.services`."""

    class Kind(models.IntegerChoices):
        VIEW = 1, "view"
        CLICK = 2, "click"
        ADD_TO_CART = 3, "add to cart"
        REMOVE_FROM_CART = 4, "remove from cart"
        PURCHASE = 5, "purchase"
        RATING = 6, "rating"
        WISHLIST = 7, "wishlist"

    class Source(models.IntegerChoices):
        WEB = 1, "web"
        API = 2, "api"
        EMAIL = 3, "email"
        IMPORT = 4, "import"

    # The foreign keys get no index of their own: interaction_user_time and
    # interaction_product_kind lead with them. Every index is paid for on each insert,
    # and this is the table the event stream writes to.
    user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="interactions", db_index=False
    )
    session_key = models.CharField(max_length=64, blank=True, default="")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="interactions", db_index=False)
    kind = models.PositiveSmallIntegerField(choices=Kind.choices)
    value = models.FloatField(default=1.0, help_text="Quantity for purchases, stars for ratings.")
    occurred_at = models.DateTimeField(default=timezone.now)
    source = models.PositiveSmallIntegerField(choices=Source.choices, default=Source.WEB)
    # References for attribution. Plain ids: shop does not depend on the other apps.
    delivery_id = models.BigIntegerField(null=True, blank=True, help_text="campaigns.Delivery id")
    rec_list_id = models.UUIDField(null=True, blank=True, help_text="Id of the recommendation list shown")
    event_id = models.CharField(  # unique per client_id when given: the two interaction_event_id_* constraints
        max_length=64,
        null=True,
        blank=True,
        help_text="Client-chosen idempotency key: an event with a known id (of the same client) is not stored twice.",
    )
    # The namespace of event_id: the id of the account that sent the event through the
    # API, so one client cannot claim (and so drop) another's ids. NULL: the store's own
    # events and imports (whose derived keys start with "imp:"), one shared namespace.
    # A plain id, not a foreign key: forgetting a client account must not move its
    # events into another namespace (nor delete events it sent about other customers).
    client_id = models.BigIntegerField(null=True, blank=True, help_text="Id of the API account that sent the event")

    objects = InteractionQuerySet.as_manager()

    class Meta:
        # No default ordering: the training read streams millions of rows unsorted.
        constraints = [
            models.CheckConstraint(condition=Q(user__isnull=False) | ~Q(session_key=""), name="interaction_has_actor"),
            models.CheckConstraint(condition=Q(kind__gte=1) & Q(kind__lte=7), name="interaction_kind_known"),
            models.CheckConstraint(
                condition=~Q(kind=6) | (Q(value__gte=0) & Q(value__lte=5)), name="interaction_rating_0_5"
            ),
            # The lower bound of shop.event_time (the upper, "now", is checked at the edge).
            models.CheckConstraint(condition=Q(occurred_at__gte=EVENTS_EARLIEST), name="interaction_occurred_at_min"),
            # A fixed upper bound no real event reaches: a year-9999 time overflows when
            # converted to local time (readers skip rows after "now" + skew: .settled()).
            models.CheckConstraint(condition=Q(occurred_at__lt=EVENTS_IMPOSSIBLE), name="interaction_occurred_at_max"),
            # Partial: the many events without an event id cost the indexes nothing. Two,
            # because NULLs are distinct in a unique index: one namespace per API client,
            # and one (client_id NULL) for the store's own events and the importers'.
            models.UniqueConstraint(
                fields=["client_id", "event_id"],
                condition=Q(event_id__isnull=False, client_id__isnull=False),
                name="interaction_event_id_client_unique",
            ),
            models.UniqueConstraint(
                fields=["event_id"],
                condition=Q(event_id__isnull=False, client_id__isnull=True),
                name="interaction_event_id_store_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-occurred_at"], name="interaction_user_time"),
            models.Index(fields=["session_key", "-occurred_at"], name="interaction_session_time"),
            models.Index(fields=["product", "kind"], name="interaction_product_kind"),
            models.Index(fields=["occurred_at"], name="interaction_time"),
            # Partial: most events come from no recommendation list and no email.
            models.Index(fields=["rec_list_id"], name="interaction_rec_list", condition=Q(rec_list_id__isnull=False)),
            models.Index(fields=["delivery_id"], name="interaction_delivery", condition=Q(delivery_id__isnull=False)),
        ]

    def __str__(self) -> str:
        who = self.user_id or f"session {self.session_key[:8]}"
        return f"{who} {self.get_kind_display()} {self.product_id}"


class Cart(models.Model):
    """A shopping cart: a customer's, or an anonymous session's until they log in."""

    user = models.OneToOneField(User, null=True, blank=True, on_delete=models.CASCADE, related_name="cart")
    session_key = models.CharField(max_length=64, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    # The order this cart last became: a repeated checkout submit is sent to it
    # (shop.services.carts.cart_checkout) instead of placing another.
    order = models.OneToOneField(
        "Order", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False) | Q(session_key__isnull=False), name="cart_has_owner"
            ),
        ]

    def __str__(self) -> str:
        return f"Cart of {self.user or self.session_key}"


class CartItem(models.Model):
    cart = models.ForeignKey(Cart, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    quantity = models.PositiveIntegerField(default=1)
    rec_list_id = models.UUIDField(null=True, blank=True)
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["added_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["cart", "product"], name="cart_item_unique_product"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="cart_item_quantity_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x product {self.product_id}"


class Order(models.Model):
    class Status(models.TextChoices):
        PLACED = "placed", "Placed"
        PAID = "paid", "Paid"
        SHIPPED = "shipped", "Shipped"
        CANCELLED = "cancelled", "Cancelled"

    number = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    external_id = models.CharField(
        max_length=64, unique=True, null=True, blank=True, help_text="Invoice number in another system."
    )
    # An order outlives a deleted account (accounting); it is then anonymous.
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PLACED)
    total = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    currency = models.CharField(max_length=3, default="GBP")
    country = models.CharField(max_length=64, blank=True)
    placed_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-placed_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(total__gte=Decimal("0")), name="order_total_non_negative"),
        ]
        indexes = [models.Index(fields=["user", "-placed_at"], name="order_user_time")]

    def __str__(self) -> str:
        return f"Order {self.external_id or str(self.number)[:8]}"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="order_lines")
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)
    rec_list_id = models.UUIDField(null=True, blank=True, help_text="List the product was clicked in")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=1), name="order_line_quantity_positive"),
            models.CheckConstraint(condition=Q(unit_price__gte=Decimal("0")), name="order_line_price_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x product {self.product_id} at {self.unit_price}"

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


class CustomerPrediction(models.Model):
    """What a customer's order history says about their future: the chance they are
    still a customer, the purchases and value to expect. Written by
    ``recommendations.predictions`` (BG/NBD + Gamma-Gamma); kept in shop so every layer
    (segments, triggers, admin) reads it without depending on recommendations."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, primary_key=True, related_name="prediction")
    probability_alive = models.FloatField(help_text="Probability that the customer still buys here (0..1).")
    expected_purchases_90d = models.FloatField(help_text="Expected purchases (orders) in the next 90 days.")
    # The money figures are empty when the history carries no prices (purchase events of
    # products without one): the purchase rhythm is predicted, the value is not.
    expected_order_value = models.FloatField(null=True, blank=True, help_text="Expected value of one future order.")
    predicted_value = models.FloatField(
        null=True,
        blank=True,
        db_index=True,
        help_text="Expected value of the customer's orders in the next 12 months (discounted).",
    )
    value_percentile = models.FloatField(
        null=True,
        blank=True,
        help_text="Share of predicted customers (in %) whose predicted value is at most this one's (100 = top).",
    )
    repeat_purchases = models.PositiveIntegerField(help_text="Days with an order after the first one.")
    first_purchase_at = models.DateTimeField()
    last_purchase_at = models.DateTimeField()
    inactive_at = models.DateTimeField(
        null=True,
        blank=True,
        db_index=True,
        help_text="When the probability of being active falls below the win-back threshold if the customer "
        "orders nothing more (empty: it never does).",
    )
    currency = models.CharField(max_length=3, default="GBP")
    computed_at = models.DateTimeField(default=timezone.now)
    run_id = models.BigIntegerField(help_text="recommendations.PredictionRun id")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(probability_alive__gte=0) & Q(probability_alive__lte=1), name="prediction_probability_0_1"
            ),
            models.CheckConstraint(
                condition=Q(value_percentile__gte=0) & Q(value_percentile__lte=100), name="prediction_percentile_0_100"
            ),
            models.CheckConstraint(
                condition=Q(expected_purchases_90d__gte=0) & Q(predicted_value__gte=0) & Q(expected_order_value__gte=0),
                name="prediction_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"Prediction for customer {self.user_id}"

    @property
    def churn_risk(self) -> float:
        return 1.0 - self.probability_alive

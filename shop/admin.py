"""Staff tools for the store: catalogue, customers (with history and orders),
interactions (read-only: only `shop.services` writes them), carts and orders."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from .models import (
    Cart,
    CartItem,
    Category,
    ConsentChange,
    CustomerPrediction,
    Interaction,
    Order,
    OrderLine,
    Product,
    User,
)
from .services.customers import user_consent_set, user_forget

# The admin's name (templates/admin/base_site.html shows it, with the store's icon).
admin.site.site_header = "Affinity"
admin.site.site_title = "Affinity"
admin.site.index_title = "Store and marketing"


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class RecentInteractionInline(ReadOnlyInline):
    model = Interaction
    fields = ("occurred_at", "kind", "product", "value", "source", "rec_list_id")
    readonly_fields = fields
    verbose_name_plural = "Recent history (latest 50)"
    ordering = ("-occurred_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request).select_related("product").order_by("-occurred_at")
        user_id = request.resolver_match.kwargs.get("object_id") if request.resolver_match else None
        if user_id is None:
            return qs.none()
        ids = list(qs.filter(user_id=user_id).values_list("pk", flat=True)[:50])
        return qs.filter(pk__in=ids)


class OrderInline(ReadOnlyInline):
    model = Order
    fields = ("placed_at", "status", "total", "currency")
    readonly_fields = fields
    ordering = ("-placed_at",)


class ConsentChangeInline(ReadOnlyInline):
    model = ConsentChange
    fields = ("changed_at", "consent", "source")
    readonly_fields = fields
    show_change_link = False


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ("-date_joined",)
    list_display = ("email", "first_name", "last_name", "country", "marketing_consent", "is_staff", "date_joined")
    list_filter = ("marketing_consent", "is_staff", "is_active", "country", "interests")
    search_fields = ("email", "first_name", "last_name", "external_id")
    readonly_fields = ("consent_changed_at", "date_joined", "last_login", "predictions")
    filter_horizontal = ("interests", "groups", "user_permissions")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Customer", {"fields": ("first_name", "last_name", "country", "external_id", "interests")}),
        ("Predictions", {"fields": ("predictions",)}),
        ("Marketing", {"fields": ("marketing_consent", "consent_changed_at")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    inlines = [OrderInline, ConsentChangeInline, RecentInteractionInline]
    actions = ["forget_customers"]

    def save_model(self, request, obj: User, form, change: bool) -> None:
        # Consent goes through the service so that every change is recorded.
        consent_changed = "marketing_consent" in form.changed_data
        wanted = obj.marketing_consent
        if consent_changed and obj.pk:
            obj.marketing_consent = not wanted
        super().save_model(request, obj, form, change)
        if consent_changed or not change:
            user_consent_set(user=obj, consent=wanted, source=ConsentChange.Source.ADMIN)

    @admin.display(description="from the order history")
    def predictions(self, obj: User) -> str:
        """The customer's stored predictions (BG/NBD + Gamma-Gamma, computed by a
        recommendations run), or why there are none."""
        prediction = CustomerPrediction.objects.filter(user_id=obj.pk).first() if obj.pk else None
        if prediction is None:
            return format_html(
                '<span id="customer-predictions">Not predicted yet: predictions need an order and are computed '
                'nightly or from <a href="{}">Customer prediction runs</a>.</span>',
                reverse("admin:recommendations_predictionrun_changelist"),
            )
        rows = [
            ("Probability active", f"{prediction.probability_alive:.0%}"),
            ("Churn risk", f"{prediction.churn_risk:.0%}"),
            ("Expected purchases, next 90 days", f"{prediction.expected_purchases_90d:.2f}"),
            *(
                [
                    ("Expected order value", f"{prediction.expected_order_value:,.2f} {prediction.currency}"),
                    (
                        "Predicted value, next 12 months",
                        f"{prediction.predicted_value:,.2f} {prediction.currency} "
                        f"(top {max(100.0 - prediction.value_percentile, 1.0):.0f}% of customers)",
                    ),
                ]
                if prediction.predicted_value is not None and prediction.value_percentile is not None
                else [("Predicted value", "not predicted: the purchases carry no prices")]
            ),
            ("Repeat purchase days", str(prediction.repeat_purchases)),
            (
                "First / last purchase",
                f"{prediction.first_purchase_at:%Y-%m-%d} / {prediction.last_purchase_at:%Y-%m-%d}",
            ),
            (
                "Due a win-back email",
                f"from {prediction.inactive_at:%Y-%m-%d} if no new order" if prediction.inactive_at else "never",
            ),
            ("Computed", f"{prediction.computed_at:%Y-%m-%d %H:%M} (run #{prediction.run_id})"),
        ]
        return format_html(
            '<table id="customer-predictions">{}</table>',
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
        )

    @admin.action(description="Forget selected customers (delete them and their history)", permissions=["delete"])
    def forget_customers(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        count = 0
        for user in queryset:
            user_forget(user=user)
            count += 1
        self.message_user(request, f"Forgot {count} customer(s).", messages.SUCCESS)


class CategoryChildInline(admin.TabularInline):
    model = Category
    fk_name = "parent"
    fields = ("name", "slug", "colour", "position")
    extra = 0
    show_change_link = True


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "parent", "swatch", "product_count", "position")
    list_filter = (("parent", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    autocomplete_fields = ("parent",)
    inlines = [CategoryChildInline]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("parent").annotate(n_products=Count("products"))

    @admin.display(description="products", ordering="n_products")
    def product_count(self, obj: Category) -> int:
        return obj.n_products

    @admin.display(description="colour")
    def swatch(self, obj: Category) -> str:
        return format_html(
            '<span style="display:inline-block;width:1.5em;height:1em;background:{};border:1px solid #999"></span> {}',
            obj.colour,
            obj.colour,
        )


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "category", "price", "currency", "stock_display", "is_active", "created_at")
    list_filter = (
        "is_active",
        "currency",
        ("stock", admin.EmptyFieldListFilter),
        ("category", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("sku", "name", "description")
    list_select_related = ("category",)
    autocomplete_fields = ("category",)
    prepopulated_fields = {"slug": ("name",)}
    list_editable = ("is_active",)
    date_hierarchy = "created_at"
    actions = ["deactivate", "activate"]

    @admin.display(description="stock", ordering="stock")
    def stock_display(self, obj: Product) -> str:
        return "not tracked" if obj.stock is None else str(obj.stock)

    @admin.action(description="Take selected products off sale")
    def deactivate(self, request, queryset):
        self.message_user(request, f"{queryset.update(is_active=False)} product(s) taken off sale.")

    @admin.action(description="Put selected products on sale")
    def activate(self, request, queryset):
        self.message_user(request, f"{queryset.update(is_active=True)} product(s) put on sale.")


@admin.register(Interaction)
class InteractionAdmin(admin.ModelAdmin):
    """Read-only: interactions are written by `shop.services` alone."""

    list_display = ("occurred_at", "user", "session_short", "kind", "product", "value", "source", "rec_list_id")
    list_filter = ("kind", "source", "occurred_at")
    search_fields = ("user__email", "product__sku", "product__name", "session_key", "event_id")
    list_select_related = ("user", "product")
    # No date_hierarchy (its year/month/day links read every row's date: 7.6 s on SQLite at
    # 1.9M events), and newest recorded first by the primary key rather than sorted by a
    # time no index leads with; the "occurred at" filter still narrows by time.
    ordering = ("-pk",)
    show_full_result_count = False  # COUNT(*) on millions of rows is slow; Django pages without it

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="session")
    def session_short(self, obj: Interaction) -> str:
        return obj.session_key[:8]


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    autocomplete_fields = ("product",)
    fields = ("product", "quantity", "unit_price", "rec_list_id")


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("__str__", "user", "status", "total", "currency", "country", "placed_at")
    list_filter = ("status", "currency", "placed_at")
    search_fields = ("external_id", "number", "user__email")
    list_select_related = ("user",)
    autocomplete_fields = ("user",)
    date_hierarchy = "placed_at"
    inlines = [OrderLineInline]
    readonly_fields = ("number",)


class CartItemInline(admin.TabularInline):
    model = CartItem
    extra = 0
    autocomplete_fields = ("product",)


@admin.register(Cart)
class CartAdmin(admin.ModelAdmin):
    list_display = ("__str__", "user", "updated_at", "item_count")
    search_fields = ("user__email", "session_key")
    autocomplete_fields = ("user",)
    inlines = [CartItemInline]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user").annotate(n_items=Count("items"))

    @admin.display(description="items", ordering="n_items")
    def item_count(self, obj: Cart) -> int:
        return obj.n_items


@admin.register(ConsentChange)
class ConsentChangeAdmin(admin.ModelAdmin):
    list_display = ("changed_at", "user", "consent", "source")
    list_filter = ("consent", "source")
    search_fields = ("user__email",)
    list_select_related = ("user",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# --- API tokens (DRF authtoken) ----------------------------------------------------------
from rest_framework.authtoken.admin import TokenAdmin as DRFTokenAdmin  # noqa: E402
from rest_framework.authtoken.models import TokenProxy  # noqa: E402

admin.site.unregister(TokenProxy)


@admin.register(TokenProxy)
class APITokenAdmin(DRFTokenAdmin):
    """Create a token for an account (an integration's own account, ideally) and revoke
    it by deleting it. The token acts with exactly that account's permissions."""

    list_display = ("masked_key", "user", "user_is_staff", "user_is_superuser", "created")
    list_filter = ("created", "user__is_staff", "user__is_superuser")
    list_select_related = ("user",)
    search_fields = ("user__email", "user__external_id", "user__first_name", "user__last_name")
    search_help_text = "Email, external id or name of the token's account"
    autocomplete_fields = ("user",)

    def get_fields(self, request, obj=None):
        return ("user",) if obj is None else ("user", "key", "created", "permissions")

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("user", "key", "created", "permissions")

    @admin.display(description="key")
    def masked_key(self, obj) -> str:
        return f"{obj.key[:6]}…{obj.key[-4:]}"

    @admin.display(description="staff", boolean=True, ordering="user__is_staff")
    def user_is_staff(self, obj) -> bool:
        return obj.user.is_staff

    @admin.display(description="superuser", boolean=True, ordering="user__is_superuser")
    def user_is_superuser(self, obj) -> bool:
        return obj.user.is_superuser

    @admin.display(description="acts with these permissions")
    def permissions(self, obj) -> str:
        if obj.user.is_superuser:
            return "All permissions (the account is a superuser)."
        perms = sorted(obj.user.get_all_permissions())
        return ", ".join(perms) or "None: the token can only read and change its account's own data."

    def save_model(self, request, obj, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            messages.success(
                request,
                format_html(
                    "API token for {} created: <code>{}</code>. Send it as "
                    "<code>Authorization: Token …</code>; delete it here to revoke it.",
                    obj.user,
                    obj.key,
                ),
            )

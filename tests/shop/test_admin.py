"""Every registered admin page renders for a staff user (all apps, found at run time)."""

import pytest
from django.contrib import admin
from django.urls import reverse

from shop.models import Product
from tests.factories import OrderLineFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

MODEL_ADMINS = sorted(((m._meta.app_label, m._meta.model_name) for m in admin.site._registry), key=str)


@pytest.mark.parametrize(("app", "model"), MODEL_ADMINS)
def test_changelist_and_add_page_render(staff_client, app, model):
    OrderLineFactory()  # a customer, an order, a product and a category to list
    response = staff_client.get(reverse(f"admin:{app}_{model}_changelist"))
    assert response.status_code == 200, f"{app}.{model} changelist"
    model_admin = next(
        a for m, a in admin.site._registry.items() if (m._meta.app_label, m._meta.model_name) == (app, model)
    )
    request = response.wsgi_request
    if model_admin.has_add_permission(request):
        response = staff_client.get(reverse(f"admin:{app}_{model}_add"))
        assert response.status_code == 200, f"{app}.{model} add page"


def test_customer_page_shows_history_and_orders(staff_client):
    from shop.services.interactions import interaction_record
    from shop.services.orders import OrderLineIn, order_place
    from tests.factories import ProductFactory

    user = UserFactory(email="history@customers.affinity.example")
    p = ProductFactory(name="Heart Light Holder")
    interaction_record(product=p, kind=1, user=user)
    order_place(user=user, lines=[OrderLineIn(product=p, quantity=1)])
    page = staff_client.get(reverse("admin:shop_user_change", args=[user.pk])).content.decode()
    assert "Recent history" in page and "Heart Light Holder" in page
    assert "Orders" in page


def test_interactions_are_read_only_in_admin(staff_client):
    assert staff_client.get(reverse("admin:shop_interaction_add")).status_code == 403


def test_consent_change_in_admin_is_recorded(staff_client):
    user = UserFactory(marketing_consent=True)
    url = reverse("admin:shop_user_change", args=[user.pk])
    form = staff_client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and not isinstance(v, list)}
    data.update(
        {
            "email": user.email,
            "marketing_consent": "",
            "interests": [],
            "groups": [],
            "user_permissions": [],
            "date_joined_0": "2024-01-01",
            "date_joined_1": "10:00:00",
            "is_active": "on",
        }
    )
    for prefix in ("orders", "consent_changes", "interactions"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    response = staff_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    user.refresh_from_db()
    assert user.marketing_consent is False
    assert user.consent_changes.filter(consent=False, source="admin").exists()


def test_untracked_stock_shows_as_not_tracked_and_is_saved_empty(staff_client):
    untracked, counted = ProductFactory(stock=None, sku="UNTR"), ProductFactory(stock=7, sku="CNT")
    html = staff_client.get(reverse("admin:shop_product_changelist")).content.decode()
    assert "not tracked" in html
    only_untracked = staff_client.get(reverse("admin:shop_product_changelist"), {"stock__isempty": "1"})
    assert "UNTR" in only_untracked.content.decode() and "CNT" not in only_untracked.content.decode()
    page = staff_client.get(reverse("admin:shop_product_change", args=[counted.pk]))
    form = page.context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k not in {"attributes"}}
    data.pop("created_at", None)
    data.update({"stock": "", "attributes": "{}", "category": counted.category_id})
    data.update({"created_at_0": "2026-01-02", "created_at_1": "10:00:00"})
    response = staff_client.post(reverse("admin:shop_product_change", args=[counted.pk]), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Product.objects.get(pk=counted.pk).stock is None and untracked.in_stock

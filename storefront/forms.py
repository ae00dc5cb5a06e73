"""Storefront forms: they validate input at the edge and name what was wrong."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm

from shop import selectors
from shop.models import Category, User
from shop.numbers import ID_MAX


class InterestsField(forms.ModelMultipleChoiceField):
    """Categories a customer likes: the ones that hold products (the leaves of the
    tree), shown grouped under their parents. Recommendations match interests to
    products' own categories, so a leaf is what makes an interest useful."""

    widget = forms.CheckboxSelectMultiple

    def __init__(self, **kwargs):
        kwargs.setdefault(
            "queryset",
            Category.objects.filter(children__isnull=True)
            .select_related("parent")
            .order_by("parent__position", "parent__name", "position", "name"),
        )
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)


class SignupForm(forms.Form):
    email = forms.EmailField(
        label="Email address", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    first_name = forms.CharField(
        label="First name", max_length=150, required=False, widget=forms.TextInput(attrs={"autocomplete": "given-name"})
    )
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 8 characters, not all numbers, not a common password.",
    )
    password2 = forms.CharField(
        label="Password again", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    interests = InterestsField(
        label="What do you like?", help_text="Pick a few: your first recommendations come from these."
    )
    marketing_consent = forms.BooleanField(
        label="Email me offers and recommendations (you can stop at any time)", required=False
    )

    def clean_email(self) -> str:
        email = User.objects.normalize_email(self.cleaned_data["email"]).lower().strip()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(
                "An account with this email address already exists. Log in, or reset your password.",
                code="duplicate_email",
            )
        return email

    def clean(self):
        data = super().clean()
        p1, p2 = data.get("password1"), data.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", forms.ValidationError("The two passwords differ.", code="password_mismatch"))
        elif p1:
            probe = User(email=data.get("email") or "", first_name=data.get("first_name") or "")
            try:
                password_validation.validate_password(p1, probe)
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return data


class LoginForm(AuthenticationForm):
    """Log in with an email address, whatever its case."""

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.fields["username"].label = "Email address"
        self.fields["username"].widget.attrs.update({"autocomplete": "email", "inputmode": "email"})

    def clean_username(self) -> str:
        return (self.cleaned_data.get("username") or "").strip().lower()


class PreferencesForm(forms.Form):
    marketing_consent = forms.BooleanField(
        label="Send me marketing email: offers and products picked for me", required=False
    )
    interests = InterestsField(label="My interests", help_text="We use these to pick products for you.")


class DeleteAccountForm(forms.Form):
    password = forms.CharField(
        label="Your password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )
    confirm = forms.BooleanField(
        label="I understand this deletes my account, history and preferences for good", required=True
    )

    def __init__(self, *args, user: User, **kwargs):
        self.user = user
        super().__init__(*args, **kwargs)

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("That is not your password.", code="password_incorrect")
        return password


class ProductFilterForm(forms.Form):
    """Filters and sort of a category or search page (GET). Invalid values are reported
    and ignored, so the page still shows products."""

    min_price = forms.DecimalField(
        label="Min £",
        required=False,
        min_value=Decimal("0"),
        max_digits=12,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
    )
    max_price = forms.DecimalField(
        label="Max £",
        required=False,
        min_value=Decimal("0"),
        max_digits=12,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
    )
    in_stock = forms.BooleanField(label="In stock only", required=False)
    sort = forms.ChoiceField(
        label="Sort by", required=False, choices=[(k, label) for k, (label, _) in selectors.SORTS.items()]
    )

    def clean(self):
        data = super().clean()
        lo, hi = data.get("min_price"), data.get("max_price")
        if lo is not None and hi is not None and lo > hi:
            self.add_error(
                "max_price", forms.ValidationError("The maximum price is below the minimum.", code="price_range")
            )
        return data

    def filters(self) -> dict:
        """The valid filters as keyword arguments of `selectors.product_browse`."""
        data = self.cleaned_data if self.is_bound and hasattr(self, "cleaned_data") else {}
        return {
            "min_price": data.get("min_price"),
            "max_price": data.get("max_price"),
            "in_stock": bool(data.get("in_stock")),
            "sort": data.get("sort") or selectors.DEFAULT_SORT,
        }


class CartAddForm(forms.Form):
    product = forms.IntegerField(min_value=1, max_value=ID_MAX)
    quantity = forms.IntegerField(min_value=1, max_value=99, initial=1, required=False)
    rl = forms.UUIDField(required=False)


class CartUpdateForm(forms.Form):
    product = forms.IntegerField(min_value=1, max_value=ID_MAX)
    quantity = forms.IntegerField(min_value=0, max_value=99)

"""Who may do what through the API.

* A **shopper** (any logged-in account, browser session or token) reads and changes
  only their own data.
* **Acting for others** (another customer's profile, events on someone else's behalf,
  the customer list) needs the Django model permission of the action -- ``view``,
  ``add``, ``change`` or ``delete`` on the model -- held by the account or its groups.
  Superusers hold them all. A token carries exactly the permissions of its owner, so
  an integration gets a dedicated account with just the permissions it needs (e.g.
  ``shop.add_interaction`` for an event pipeline) and a token created in admin.
  ``is_staff`` alone grants nothing here: it is about admin access, not data.
* **Staff tools** (training models, running campaigns, previews) are no exception: the
  model permission of the view's ``permission_action`` (`ActionModelPermission`), plus
  any further permission the view names; ``is_staff`` alone grants nothing there either.
"""

from __future__ import annotations

from rest_framework import permissions

METHOD_ACTIONS = {
    "GET": "view",
    "HEAD": "view",
    "OPTIONS": "view",
    "POST": "add",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}


def perm_name(model, action: str) -> str:
    return f"{model._meta.app_label}.{action}_{model._meta.model_name}"


def can_act_for_others(user, model, action: str) -> bool:
    """Whether ``user`` may ``action`` (view/add/change/delete) ``model`` rows of anyone."""
    return bool(user and user.is_authenticated and user.is_active and user.has_perm(perm_name(model, action)))


def _view_model(view):
    model = getattr(view, "permission_model", None)
    if model is None:
        queryset = getattr(view, "queryset", None)
        model = queryset.model if queryset is not None else None
    if model is None:
        raise AssertionError(f"{type(view).__name__} needs `permission_model` or `queryset` for its permission class")
    return model


class HasModelPermission(permissions.BasePermission):
    """The account holds the model permission of the request's method on the view's
    model (``view.permission_model`` or ``view.queryset.model``): GET -> view,
    POST -> add, PUT/PATCH -> change, DELETE -> delete. For staff and integrations."""

    message = "This needs a permission your account does not have."

    def has_permission(self, request, view) -> bool:
        action = METHOD_ACTIONS.get(request.method)
        return bool(action) and can_act_for_others(request.user, _view_model(view), action)


class ActionModelPermission(permissions.BasePermission):
    """The account holds the model permission of the view's ``permission_action``
    (default ``view``; e.g. ``add`` to train, ``change`` to activate) on its model (the
    class's ``model``, else ``view.permission_model`` or ``view.queryset.model``), and
    every permission in the view's ``required_permissions`` (e.g. a preview showing a
    customer's recommendations). ``is_staff`` alone grants nothing; superusers hold all."""

    message = "This needs a permission your account does not have."
    model = None  # a subclass may name its model once instead of every view

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        action = getattr(view, "permission_action", "view")
        needed = (perm_name(self.model or _view_model(view), action), *getattr(view, "required_permissions", ()))
        return user.has_perms(needed)

"""The typed errors of the store's services: what is wrong with which row and field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shop.models import Product


@dataclass(frozen=True)
class RowError:
    """What is wrong with one input row: its index (0-based) or line, the field, why."""

    index: int
    field: str
    message: str
    code: str = "invalid"

    def as_dict(self) -> dict:
        return {"index": self.index, "field": self.field, "code": self.code, "message": self.message}


class ValidationFailed(ValueError):
    """Input was rejected; nothing was written. ``errors`` names every bad row/field."""

    def __init__(self, errors: Sequence[RowError], message: str | None = None):
        self.errors = list(errors)
        first = self.errors[0] if self.errors else None
        super().__init__(
            message
            or (
                f"{len(self.errors)} invalid row(s); first: row {first.index} {first.field}: {first.message}"
                if first
                else "invalid input"
            )
        )


class OutOfStock(ValueError):
    def __init__(self, product: Product, wanted: int):
        self.product, self.wanted = product, wanted
        super().__init__(f"Only {product.stock} of {product.sku} in stock, {wanted} wanted.")


class Conflict(ValueError):
    """The write clashes with what is stored (a SKU taken, a category still in use);
    nothing was written. ``field`` names the input it is about (or "")."""

    def __init__(self, message: str, field: str = ""):
        self.field = field
        super().__init__(message)

"""What the store does when its own rows change (connected in `ShopConfig.ready`)."""

from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import Category
from .selectors import CATEGORY_CACHE_KEY


@receiver(post_save, sender=Category, dispatch_uid="shop.category_tree_changed.save")
@receiver(post_delete, sender=Category, dispatch_uid="shop.category_tree_changed.delete")
def category_tree_changed(sender, **kwargs) -> None:
    """A category was added, moved, renamed or removed: the next read of the cached tree
    (`selectors.category_nodes`: navigation, `category_descendant_ids`) sees it."""
    cache.delete(CATEGORY_CACHE_KEY)

"""Signal receivers of the recommendations app (connected in ``apps.ready``)."""

from __future__ import annotations

from . import model_cache, services, trending


def on_user_forgotten(sender, user_id: int, **kwargs) -> None:
    """``shop.signals.user_forgotten``: drop what was derived from the customer."""
    services.user_data_forget(user_id=user_id)


def on_merchandising_changed(sender, **kwargs) -> None:
    """A placement or merchandising rule saved, deleted or re-scoped: serving processes
    read placements and rules again (the serving epoch, in the same transaction)."""
    if kwargs.get("raw"):  # loading fixtures
        return
    model_cache.epoch_bump()


def on_serving_started(sender, **kwargs) -> None:
    """``shop.signals.serving_started``: a web process is about to serve. Load the
    active models (and those of running experiments) into its memory, so the first
    shopper does not wait for an artifact to be read."""
    snap = model_cache.snapshot()
    infos = [*snap.active.values()]
    infos += [v.model_version for e in snap.experiments for v in e.variants if v.model_version is not None]
    for info in infos:
        model_cache.model_get(info)
    trending.trending_items(snap)  # the last list, or (never computed yet) computed now, before any shopper

"""Writes of the store's domain, one module per entity: `interactions` (the only
writer of `Interaction` rows), `customers`, `carts`, `orders`; their typed errors in
`errors`. The fast bulk insert of trusted rows (COPY / SQLite) is `shop.bulk`.

Functions are named ``<entity>_<action>``, take keyword-only arguments, validate at
the edge and raise typed errors (`ValidationFailed` carries every row's problem).
"""

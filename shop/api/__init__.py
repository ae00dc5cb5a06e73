"""REST API v1 of the store: the catalogue, customers (and the shopper's own profile),
events.

Thin by design: an endpoint that writes parses its input with its nested
``InputSerializer`` (or, for events, the lean parser `interactions.parse_event` which
the ``InputSerializer`` documents), calls ONE service of `shop.services`, and presents
the result with its ``OutputSerializer``; a list filters through ONE selector of
`shop.selectors`. Read-only lookups are viewsets. Conventions shared by every app's
endpoints (errors, parsers, schema, pagination, permissions, throttling) live in
`shop.rest`; the schema at ``/api/v1/schema/`` documents all of it.
"""

"""A GIN index for the storefront's full-text product search (PostgreSQL only).

`shop.selectors.product_search` filters on the search document
``name (A, english) || sku (A, simple) || description (C, english)``; this index is
on exactly that expression, so a search reads the index instead of building the
document of every product (about 100 ms -> a few ms on the Online Retail catalogue).
SQLite has no full-text search of this kind and gets nothing.
"""
from django.db import migrations

DOCUMENT = (
    "((setweight(to_tsvector('english'::regconfig, COALESCE(\"name\", '')), 'A')"
    " || setweight(to_tsvector('simple'::regconfig, COALESCE(\"sku\", '')), 'A'))"
    " || setweight(to_tsvector('english'::regconfig, COALESCE(\"description\", '')), 'C'))"
)


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "product_search_document" ON "shop_product" USING gin ({DOCUMENT})'
        )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute('DROP INDEX IF EXISTS "product_search_document"')


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]

    operations = [migrations.RunPython(create_index, drop_index, elidable=False)]

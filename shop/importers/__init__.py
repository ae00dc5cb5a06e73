"""Importers and seeders of store data.

Pure parsing, cleaning and generation live in modules without database access
(`catalogue`, `online_retail`, `interactions_file`, `synthetic`); the ``*_load``
modules write, in batches, through `shop.services` for interactions. Management
commands (``import_online_retail``, ``import_interactions``, ``seed_synthetic``) only
parse arguments, call one loader and print its report.
"""

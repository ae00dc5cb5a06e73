"""The API-wide conventions every app's endpoints follow: one error shape, parsers,
schema helpers, pagination, permissions and throttling."""

"""Property-based tests of the WHOLE API v1 against its own OpenAPI schema.

Schemathesis reads ``/api/v1/schema/`` from the application (in process, through WSGI),
generates requests for every operation of every app (store, recommendations,
campaigns) -- valid ones and deliberately invalid ones -- sends them as a staff client
with a token, and checks each response: never a 5xx, a documented status code, a
documented content type, and a body that conforms to the documented schema.

Bounded: a handful of examples per operation (a few hundred requests in all), no
deadline, a fixed seed so that a failure reproduces. Nothing is excluded: an
operation that fails here fails the suite, whichever app it belongs to.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from tests.factories import CategoryFactory, ProductFactory
from tests.shop.conftest import make_user

MAX_EXAMPLES = 8

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 20240501,
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True},
        "phases": {
            "examples": {"enabled": True},  # the examples written in the schema itself
            "coverage": {"enabled": False},  # hundreds of cases per operation: too many for every run
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
        "checks": {
            # A schema-valid request may still be refused with 400 for what a schema cannot
            # say (an unknown id or slug, a page past the last); `rejected_for_a_documented_rule`
            # below fails the ones the schema could have said.
            "positive_data_acceptance": {"expected-statuses": ["2xx", "400", "401", "403", "404", "409", "429"]},
        },
    }
)

# Error codes of rules an OpenAPI schema can express (types, bounds, lengths, enums).
SCHEMA_EXPRESSIBLE_CODES = {
    "required",
    "null",
    "blank",
    "max_value",
    "min_value",
    "max_length",
    "min_length",
    "invalid_choice",
    "not_a_list",
    "unknown_field",
    "max_digits",
    "max_decimal_places",
    "max_whole_digits",
    "empty",
}


@schemathesis.check
def rejected_for_a_documented_rule(ctx, response, case):
    """A request generated as valid by the schema must not get a 400 for a rule the
    schema could have stated (the schema is then wrong: it promised too much)."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    try:
        fields = response.json()["error"]["fields"]
    except (ValueError, KeyError, TypeError):
        raise AssertionError(f"400 without the API's error shape: {response.text[:300]}") from None
    undocumented = [f for f in fields if f.get("code") in SCHEMA_EXPRESSIBLE_CODES]
    if undocumented:
        raise AssertionError(
            "Schema-valid request rejected for a rule the schema does not state: "
            + "; ".join(f"{f.get('field')}: {f.get('code')} ({f.get('message')})" for f in undocumented)
        )
    return None


def _load_schema(config: SchemathesisConfig = CONFIG):
    from shop.wsgi import application

    # Loaded at collection, from the application itself: the schema it serves.
    return schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application, config=config)


schema = _load_schema()


@pytest.fixture
def in_process(db, settings):
    """The in-process WSGI calls share this test's database transaction: keep Django
    from closing "obsolete" connections at each request's start and end (as its own
    test client does). Rate limits off: hundreds of requests in seconds are the point."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "off", "user": "off", "interactions_batch": "off"},
    }
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def staff_token(staff_user):
    from rest_framework.authtoken.models import Token

    home = CategoryFactory(name="Home", slug="home")
    for i in range(3):
        ProductFactory(sku=f"ST{i}", category=home, price=Decimal("3.50"))
    make_user("someone@example.com", external_id="crm-1")
    return Token.objects.create(user=staff_user).key


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=MAX_EXAMPLES, derandomize=True)
def test_api_conforms_to_its_schema(case, in_process, staff_token):
    case.call_and_validate(headers={"Authorization": f"Token {staff_token}"})


# --- negative testing: only invalid requests, more of them; never a 5xx ---------------------
NEGATIVE_EXAMPLES = 20

NEGATIVE_CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 20240502,
        "generation": {"mode": "negative", "max-examples": NEGATIVE_EXAMPLES, "deterministic": True},
        "phases": {
            "examples": {"enabled": False},
            # boundary values just outside every documented rule: a bound + 1, a wrong type,
            # a missing required field -- the inputs that used to end in a database error
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
    }
)


@schemathesis.check
def refused_in_the_error_shape(ctx, response, case):
    """Whatever is wrong with a request, the API refuses it in its one error shape."""
    if 400 <= response.status_code < 500:
        try:
            error = response.json()["error"]
            assert {"code", "message", "fields"} <= set(error)
        except (ValueError, KeyError, TypeError, AssertionError):
            raise AssertionError(
                f"{response.status_code} without the API's error shape: {response.text[:300]}"
            ) from None
    return None


negative_schema = _load_schema(NEGATIVE_CONFIG)


@negative_schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=NEGATIVE_EXAMPLES, derandomize=True)
def test_api_refuses_invalid_requests_without_5xx(case, in_process, staff_token):
    case.call_and_validate(
        headers={"Authorization": f"Token {staff_token}"},
        checks=[schemathesis.checks.not_a_server_error, refused_in_the_error_shape],
    )


# --- stateful testing: sequences of calls that follow the schema's links ---------------------
# `shop.rest.schema.link_operations` links every create (201 with an id) to the operations on
# what it created, so a run creates a product, a category, a customer or a campaign and then
# reads, changes, acts on and deletes THAT one: states no single-operation run can reach
# (a campaign scheduled then cancelled, a category deleted while products point at it).
STATEFUL_CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 20240503,
        "generation": {"mode": "all", "deterministic": True},
        "phases": {"stateful": {"enabled": True, "max-steps": 12}},
    }
)

stateful_schema = _load_schema(STATEFUL_CONFIG)


def test_schema_links_every_create_to_the_operations_on_what_it_created():
    """The links the stateful run follows exist (a failing hook would leave it nothing to do)."""
    machine = stateful_schema.as_state_machine()
    linked = {str(transition) for transition in machine._transitions.operations}
    for collection in ("products", "categories", "customers", "campaigns"):
        assert any(collection in name for name in linked), (collection, linked)


def test_api_call_sequences_never_fail(in_process, staff_token):
    headers = {"Authorization": f"Token {staff_token}"}

    class APIWorkflow(stateful_schema.as_state_machine()):
        # Each sequence starts from the same database (a savepoint rolled back after it):
        # Hypothesis replays sequences, and a replay must meet the state the first run met.
        def setup(self):
            self.savepoint = transaction.savepoint()

        def teardown(self):
            transaction.savepoint_rollback(self.savepoint)

        def get_call_kwargs(self, case):
            return {"headers": headers}

        def validate_response(self, response, case, additional_checks=(), **kwargs):
            case.validate_response(
                response,
                checks=[schemathesis.checks.not_a_server_error, refused_in_the_error_shape],
                headers=headers,
            )

    APIWorkflow.run(
        settings=settings(
            max_examples=50,
            stateful_step_count=8,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
    )

"""schemathesis over the live server's OpenAPI spec (with an admin token): no request answered with 5xx."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.support.server import ADMIN_TOKEN

EXAMPLES_PER_OPERATION = 15


def test_no_generated_request_gets_a_server_error(server):
    schema = schemathesis.openapi.from_url(f"{server.http}/openapi.json", headers=server.headers(ADMIN_TOKEN))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    calls = []
    for operation in operations:
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def no_server_error(case):
            response = case.call(base_url=server.http, headers=server.headers(ADMIN_TOKEN), timeout=60)
            calls.append(response.status_code)
            assert response.status_code < 500, (operation.label, case.path_parameters, case.query,
                                                response.status_code, response.text[:300])

        no_server_error()
    assert len(calls) >= 3 * len(operations)

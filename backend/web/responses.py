"""The API's answers besides success, documented once so every route says the same.

`api.router` carries `API_ERRORS` (422, 429, 503), so a route declared on it documents only
its own success and any code of its own (409 for a taken username). A JSON route on another
router passes `responses={**API_ERRORS, ...}` itself. Schemathesis
(tests/test_schemathesis.py) fails the suite on any status code a route answers but does
not list here, and on any body or `Retry-After` that does not match.
"""

from typing import Any

from fastapi import status
from pydantic import BaseModel


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str
    # The constraint that failed (e.g. {"min_length": 8}); never the rejected value.
    ctx: dict[str, Any] | None = None


class FieldErrors(BaseModel):
    detail: list[FieldError]


class Problem(BaseModel):
    detail: str


Responses = dict[int | str, dict[str, Any]]

RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 1},
    }
}

INVALID: Responses = {
    status.HTTP_422_UNPROCESSABLE_CONTENT: {
        "model": FieldErrors,
        "description": (
            "Invalid input, one entry per problem, without the rejected values. A body "
            'that is not JSON (or not UTF-8) is `"type": "json_invalid"`; an address the '
            'mail relay could never deliver to is `"type": "undeliverable"`.'
        ),
    }
}
TOO_MANY_REQUESTS: Responses = {
    status.HTTP_429_TOO_MANY_REQUESTS: {
        "model": Problem,
        "description": "Too many attempts from this client; retry after `Retry-After` seconds.",
        "headers": RETRY_AFTER,
    }
}
UNAVAILABLE: Responses = {
    status.HTTP_503_SERVICE_UNAVAILABLE: {
        "model": Problem,
        "description": (
            "The database is unreachable, or the service is at capacity; nothing was saved. "
            "Retry after `Retry-After` seconds."
        ),
        "headers": RETRY_AFTER,
    }
}
API_ERRORS: Responses = {**INVALID, **TOO_MANY_REQUESTS, **UNAVAILABLE}

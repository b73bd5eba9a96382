"""The API's one error shape, ``{"error": "<code>", ...}``, and every refusal it is documented with.

An operation names its refusals once (``answers(...)``): that gives ninja the response schema of
every status and the OpenAPI document the codes each status carries, with ``Retry-After`` where
the client is told to wait. Refusals are raised as ``ApiError`` and rendered by the handlers in
config/api.py, never validated against a schema: the sold-out answer is the hot path.
"""

from dataclasses import dataclass

from django.http import JsonResponse
from ninja import Schema
from pydantic import Field

from .http import json_error


class ApiError(Exception):
    def __init__(self, status: int, error: str, **extra):
        super().__init__(error)
        self.status, self.error, self.extra = status, error, extra


def retry_later(status: int, error: str, retry_after: int) -> JsonResponse:
    response = json_error(status, error, retry_after=retry_after)
    response["Retry-After"] = str(retry_after)
    return response


class Error(Schema):
    """Every refusal. ``error`` is a stable code; the other fields come with some codes only."""

    error: str = Field(description="a stable code, listed in each answer's description")
    detail: str | None = Field(None, description="for a human; not stable")
    fields: list[str] | None = Field(None, description="missing_fields, wrong_type")
    expected: str | None = Field(None, description="wrong_type, unsupported_media_type")
    max_bytes: int | None = Field(None, description="body_too_large")
    allowed: list[str] | None = Field(None, description="method_not_allowed")
    retry_after: int | None = Field(None, description="seconds; the Retry-After header too")


@dataclass(frozen=True)
class Refusal:
    status: int
    error: str
    why: str
    retry_after: bool = False


# Every operation can answer these two: the method check and an outage (RequestMetaMiddleware).
METHOD_NOT_ALLOWED = Refusal(405, "method_not_allowed", "another method; `allowed` lists this one")
UNAVAILABLE = Refusal(
    503, "unavailable", "Redis or Postgres unreachable: retry after Retry-After s", True
)
# Every unsafe method (CsrfViewMiddleware, common.http.csrf_failure).
CSRF_FAILED = Refusal(403, "csrf_failed", "no or wrong X-CSRFToken (GET /api/auth/csrf)")
# A JSON body (common.json_body).
INVALID_JSON = Refusal(400, "invalid_json", "not a JSON object (`detail` says why)")
BAD_CONTENT_LENGTH = Refusal(400, "bad_content_length", "a Content-Length that is not a number")
BODY_TOO_LARGE = Refusal(413, "body_too_large", "over `max_bytes` (API_MAX_BODY_BYTES)")
UNSUPPORTED_MEDIA_TYPE = Refusal(415, "unsupported_media_type", "not application/json")
MISSING_FIELDS = Refusal(400, "missing_fields", "required fields absent: `fields`")
WRONG_TYPE = Refusal(400, "wrong_type", "fields of the wrong JSON type: `fields`, `expected`")
JSON_BODY = (INVALID_JSON, BAD_CONTENT_LENGTH, BODY_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE)
NOT_AUTHENTICATED = Refusal(401, "not_authenticated", "no logged-in session")
RATE_LIMITED = Refusal(429, "rate_limited", "too many: retry after Retry-After s", True)
INVALID_PAGE = Refusal(400, "invalid_page", "page is not a positive integer")
NO_SUCH_PAGE = Refusal(404, "no_such_page", "page past the last one")
NOT_FOUND = Refusal(404, "not_found", "no such object")

_RETRY_AFTER = {
    "description": "seconds to wait before trying again",
    "schema": {"type": "integer", "minimum": 1},
}


def answers(ok: dict, *refusals: Refusal, unsafe=False, extra=None, links=None) -> dict:
    """``response=`` and ``openapi_extra=`` for a route: ``ok`` ({status: schema}), then every
    refusal, plus the 405 and the 503 every operation has (and the 403 CSRF if ``unsafe``);
    ``extra`` goes into the operation's OpenAPI object as it is; ``links`` (OpenAPI links: the
    operations a client can call next with values from this answer) go on the ``ok`` answer."""
    refusals = (*refusals, METHOD_NOT_ALLOWED, UNAVAILABLE, *((CSRF_FAILED,) if unsafe else ()))
    response, documented = dict(ok), {}
    for refusal in refusals:
        response[refusal.status] = Error
        doc = documented.setdefault(refusal.status, {"codes": [], "retry_after": False})
        doc["codes"].append(f"`{refusal.error}`: {refusal.why}")
        doc["retry_after"] |= refusal.retry_after
    described = {status: {"links": links} for status in ok if links}
    for status, doc in sorted(documented.items()):
        described[status] = {"description": "; ".join(doc["codes"])}
        if doc["retry_after"]:
            described[status]["headers"] = {"Retry-After": _RETRY_AFTER}
    return {"response": response, "openapi_extra": {**(extra or {}), "responses": described}}

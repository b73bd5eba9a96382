"""``JsonBody``: ninja's ``Body`` with qbuy's limits, checked before the body is read.

Ninja's own body reader reads ``request.body`` first, then parses: a multipart stream that
CsrfViewMiddleware already consumed through ``request.POST`` would raise there (a 500), a body
up to DATA_UPLOAD_MAX_MEMORY_SIZE would be read whatever API_MAX_BODY_BYTES says, and every
failure becomes one 400. Here the content type (415) and the declared length (413) are checked
first, and each failure gets its own code (common.api_errors).

A body whose schema has a default is optional: no body at all (``curl -X POST``), whatever its
Content-Type, is the schema's default.
"""

import json

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from ninja.params.models import Body, BodyModel

from .api_errors import ApiError


def json_object(request) -> dict:
    """The request's JSON object; ApiError (400, 413, 415) for anything else."""
    if not request.META.get("CONTENT_LENGTH") and not request.META.get("CONTENT_TYPE"):
        raise ApiError(400, "invalid_json", detail="empty body")
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", expected="application/json")
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ApiError(400, "bad_content_length") from None
    if length > settings.API_MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", max_bytes=settings.API_MAX_BODY_BYTES)
    try:
        data = json.loads(request.body or b"null")
    except RequestDataTooBig:
        raise ApiError(413, "body_too_large", max_bytes=settings.API_MAX_BODY_BYTES) from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: a small body can nest deeper than the parser's stack.
        raise ApiError(400, "invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", detail="expected a JSON object")
    return data


class JsonBodyModel(BodyModel):
    @classmethod
    def get_request_data(cls, request, api, path_params):
        name = cls.__read_from_single_attr__
        optional = not cls.model_fields[name].is_required()
        if optional and request.META.get("CONTENT_LENGTH") in (None, "", "0"):
            return None  # the schema's default
        return {name: json_object(request)}


class JsonBody(Body):
    """One schema per operation, ``payload: Annotated[Schema, JsonBody()]`` (``= default`` if
    optional), read by JsonBodyModel."""

    _model = JsonBodyModel

    def __init__(self, default=..., **kwargs):
        super().__init__(default, **kwargs)

    @classmethod
    def _param_source(cls) -> str:
        return "body"  # what the OpenAPI document calls it

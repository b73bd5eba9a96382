"""The JSON API: one NinjaAPI at /api/, a router per app, and the edge between it and Django.

Ninja declares each operation (method, path, body, every answer) and writes the OpenAPI 3.1
document from that (/api/openapi.json, /api/docs). qbuy keeps two things of its own, at the
edge, in ``urls()``:

* CSRF: ninja marks its views csrf_exempt and leaves the check to its cookie auth; qbuy's views
  are checked by CsrfViewMiddleware as the pages are, before the view runs, whatever the auth
  (the login and the buy endpoint have none), with common.http.csrf_failure's JSON 403.
* 405: ninja's is a text body; ours is JSON with the allowed methods.

An answer that read the session (the user, a login, a logout) is personal, as every page's is:
RequestMetaMiddleware makes it ``private, no-store``. Answers that did not read it (the sale
list, the buy endpoint's sold-out memo) stay cacheable.

Errors keep the shape ``{"error": "<code>", ...}`` (common.api_errors): ninja's 422 validation
answers become the 400s the API always gave. Any other exception propagates to
RequestMetaMiddleware: a 503 for an outage, a JSON 500 otherwise (ninja would answer its own
text 500 under DEBUG).
"""

import functools
import json

import pydantic
from django.http import Http404, HttpResponseNotAllowed
from ninja import NinjaAPI, Swagger
from ninja.errors import AuthenticationError, HttpError, ValidationError, ValidationErrorContext
from ninja.operation import Operation
from waitingroom.api import router as room_router

from accounts.api import router as auth_router
from common.api_errors import ApiError
from common.http import api_not_found, json_error
from orders.api import router as orders_router
from sales.api import router as sales_router

# A field whose own code says more than missing_fields/wrong_type (the API's answers before
# ninja): any validation error of it is this answer.
FIELD_ERRORS = {
    "page": ("invalid_page", "page must be a positive integer"),
    "sale": ("invalid_sale", "sale must be a positive integer"),
    "quantity": ("invalid_quantity", "quantity must be a positive integer"),
}


class QbuyAPI(NinjaAPI):
    def get_content_type(self) -> str:
        return "application/json"  # as JsonResponse says it: one Content-Type for all answers

    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        # The document depends on the code only, yet ninja builds it anew for every GET of
        # /api/openapi.json (40-55 ms of a web worker each): once per prefix and process.
        if path_prefix is None:
            path_prefix = self.get_root_path(path_params or {})
        schemas = self.__dict__.setdefault("_openapi_schemas", {})
        if path_prefix not in schemas:
            schemas[path_prefix] = super().get_openapi_schema(path_prefix=path_prefix)
        return schemas[path_prefix]


api = QbuyAPI(
    title="qbuy",
    version="1",
    description=(
        'The flash-sale API. Errors are `{"error": "<code>", ...}`; each answer\'s '
        "description lists its codes. POSTs need the X-CSRFToken header "
        "(GET /api/auth/csrf); the session is the SESSION_ID cookie (POST /api/auth/login)."
    ),
    urls_namespace="api",
    openapi_url="/openapi.json",
    docs_url="/docs",
    docs=Swagger(settings={"persistAuthorization": False}),
)
api.add_router("/auth/", auth_router)
api.add_router("/sales/", sales_router)
api.add_router("/", orders_router)
api.add_router("/", room_router)


@api.exception_handler(ApiError)
def _api_error(request, exc: ApiError):
    return json_error(exc.status, exc.error, **exc.extra)


@api.exception_handler(AuthenticationError)
def _not_authenticated(request, exc):
    return json_error(401, "not_authenticated")


@api.exception_handler(Http404)
def _not_found(request, exc):
    return json_error(404, "not_found")


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    return json_error(exc.status_code, "bad_request", detail=str(exc))


@api.exception_handler(Exception)
def _unhandled(request, exc):
    raise exc  # RequestMetaMiddleware answers: 503 for an outage, a JSON 500 otherwise


@api.exception_handler(ValidationError)
def _invalid(request, exc: ValidationError):
    return validation_answer(exc.errors)


def validation_answer(errors: list[dict]):
    """Pydantic's errors as the API's 400s, in the order they were always checked."""
    body_fields, missing, wrong = False, [], []
    for error in errors:
        source, *loc = error["loc"]
        field = loc[-1] if (source == "query" or len(loc) > 1) else None
        if field in FIELD_ERRORS:
            code, detail = FIELD_ERRORS[field]
            return json_error(400, code, detail=detail)
        if field is None:  # the body itself: a JSON value that is not an object
            return json_error(400, "invalid_json", detail="expected a JSON object")
        body_fields = True
        (missing if error["type"] == "missing" else wrong).append(field)
    if missing:
        return json_error(400, "missing_fields", fields=missing)
    if body_fields and wrong:
        return json_error(400, "wrong_type", fields=wrong, expected="string")
    return json_error(400, "bad_request")


def _json_405(response):
    allowed = sorted(m.strip() for m in response["Allow"].split(","))
    return HttpResponseNotAllowed(
        allowed,
        content=json.dumps({"error": "method_not_allowed", "allowed": allowed}),
        content_type="application/json",
    )


def _edge(view, methods=None):
    """``view`` as qbuy serves it: see the module's docstring."""

    # updated=(): not ninja's csrf_exempt, which __dict__ would carry over.
    @functools.wraps(view, updated=())
    def edge(request, *args, **kwargs):
        if methods is not None and request.method not in methods:
            return _json_405(HttpResponseNotAllowed(methods))
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and response.get("Content-Type") != "application/json":
            response = _json_405(response)
        return response

    return edge


class LeanOperation(Operation):
    """Ninja's Operation with two of its per-request costs taken out (``make bench-compare``
    measures the buy endpoint against the hand-written views ninja replaced):

    * the HttpResponse ninja makes ahead of every view, for views that take a ``response``
      argument to set headers on. None of qbuy's does (``make_lean`` checks): it is made only
      for an answer the view returned, so a refusal the view raised (the sold-out storm's 409s)
      skips it, about 5 us each;
    * the parameters read from each parameter model by iterating it (pydantic's ``__iter__``,
      about 3 us a model) instead of from its ``__dict__``, where pydantic keeps the fields.
    """

    def _get_values(self, request, path_params, temporal_response):
        values, errors = {}, []
        for model in self.models:
            try:
                data = model.resolve(request, self.api, path_params)
            except pydantic.ValidationError as exc:
                errors.append(ValidationErrorContext(pydantic_validation_error=exc, model=model))
                continue
            values.update(data.__dict__)
            if data.__pydantic_extra__:
                values.update(data.__pydantic_extra__)
        if errors:
            raise self.api.validation_error_from_error_contexts(errors)
        return values

    def run(self, request, **kw):
        error = self._run_checks(request)
        if error:
            return error
        try:
            result = self.view_func(request, **self._get_values(request, kw, None))
            return self._result_to_response(
                request, result, self.api.create_temporal_response(request)
            )
        except Exception as exc:
            return self.api.on_exception(request, exc)


# Django tries the API's patterns in order, a regular expression each (about 0.5 us a miss):
# the flash sale's hot path is tried first.
HOT_PATHS = ("buy",)


def make_lean(operation: Operation) -> None:
    if operation.signature.response_arg or operation.stream_format or operation.is_async:
        raise TypeError(f"{operation.view_func.__name__}: LeanOperation can't run it")
    operation.__class__ = LeanOperation


def _operations() -> dict[str, tuple[Operation, ...]]:
    """URL name -> the operations of its path (ninja's PathView), each made a LeanOperation."""
    by_name = {}
    for bound in api._get_bound_routers():
        for path_view in bound.path_operations.values():
            for operation in path_view.operations:
                make_lean(operation)
                by_name[operation.url_name] = tuple(path_view.operations)
    return by_name


def urls():
    """``api.urls`` for ``path("api/", ...)``, each view behind ``_edge``.

    A path of one operation calls it directly: ninja's view for a path only picks the
    operation by method, which ``_edge`` already checked.
    """
    patterns, app_name, namespace = api.urls
    operations = _operations()
    for pattern in patterns:
        ops = operations.get(pattern.name, ())
        if pattern.name == "api-root":
            # Ninja's root (/api/) only names the prefix for reverse(); it is no endpoint.
            pattern.callback = api_not_found
        elif pattern.name in ("openapi-json", "openapi-view"):
            pattern.callback = _edge(pattern.callback, methods=("GET", "HEAD"))
        elif len(ops) == 1:
            pattern.callback = _edge(ops[0].run, methods=tuple(ops[0].methods))
        else:
            pattern.callback = _edge(pattern.callback)
    patterns.sort(key=lambda pattern: pattern.name not in HOT_PATHS)
    return patterns, app_name, namespace

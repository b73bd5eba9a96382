"""Sold out, answered before Django (issue 20): a WSGI layer in front of the web's Django.

Once a sale is sold out nearly every request of a flash sale is a buy that gets 409 sold_out,
and each one went through every middleware, the URL resolver and ninja before the sold-out memo
(orders/soldout.py) answered. This layer answers it first, for a buy of a sale this process
knows is sold out, with the same answer Django gives, and hands everything else to Django.

The same answer, by construction rather than by copy:
* the checks Django makes before its memo answers are Django's own code, run here on a
  WSGIRequest of the same environ: the host against ALLOWED_HOSTS, the HTTPS redirect, the CSRF
  check (CsrfViewMiddleware's hooks), the body (common.json_body and the BuyIn schema) and the
  session cookie's presence. Whenever one of them would refuse, or anything is unusual (another
  method, a body too long to read, Server-Timing on), Django answers, as before: the 400, 401,
  403, 413 or 415 is its own;
* the status, headers and body replayed are those of a memo answer Django gave in this process
  (the view marks it in the environ: soldout.MEMO_ANSWER): the first sold-out buy after a start goes
  through Django and is recorded, minus the request id, which is made here as
  RequestMetaMiddleware makes it. One record per scheme (HTTPS adds Strict-Transport-Security);
  an answer that set a cookie is never recorded.
"""

import io
import re

from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware
from pydantic import ValidationError

from common.api_errors import ApiError
from common.json_body import json_object
from qbuy_core.metrics import VIEW
from qbuy_core.middleware import REQUEST_ID_HEADER, request_id_for

from . import metrics, soldout
from .schemas import BuyIn

_BUY = re.compile(r"/api/sales/([0-9]+)/buy")
_PER_REQUEST = {REQUEST_ID_HEADER.lower(), "server-timing"}


class _Refused(Exception):
    pass


class _CsrfCheck(CsrfViewMiddleware):
    """Django's CSRF check, silent when it refuses: Django itself checks that request again and
    logs the refusal once."""

    def _reject(self, request, reason):
        raise _Refused(reason)


def _no_view(request):  # the CSRF check reads the view's csrf_exempt: the buy has none
    raise AssertionError("never called")


class SoldOutEdge:
    def __init__(self, app):
        self.app = app
        self.records: dict[bool, tuple[str, list, bytes]] = {}  # is_secure -> the answer
        self.view = ""  # the view that gave it, for the request metrics (config/metrics.py)
        self.csrf = _CsrfCheck(self.app)
        self.security = SecurityMiddleware(self.app)

    def __call__(self, environ, start_response):
        match = _BUY.fullmatch(environ.get("PATH_INFO", ""))
        if (
            match is None
            or environ.get("REQUEST_METHOD") != "POST"
            or not soldout.known(int(match[1]))
            or settings.BUY_STRATEGY != "gate"
            or getattr(settings, "SERVER_TIMING", settings.DEBUG)
        ):
            return self.app(environ, start_response)
        try:
            request = self._request(environ)
            secure = request.is_secure()
            record = self.records.get(secure)
            if record is not None:
                self._check(request)
        except _Refused:
            return self.app(environ, start_response)
        if record is None:
            return self._recorded(environ, start_response, secure)
        status, headers, body = record
        environ[VIEW] = self.view
        environ[metrics.OUTCOME] = "sold_out"
        start_response(status, [*headers, (REQUEST_ID_HEADER, request_id_for(request.META))])
        return [body]

    @staticmethod
    def _request(environ) -> WSGIRequest:
        """A request on the environ, its body read and put back for Django to read again."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise _Refused("bad content length") from None
        if not 0 <= length <= settings.API_MAX_BODY_BYTES:
            raise _Refused("body too large")
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        request = WSGIRequest({**environ, "wsgi.input": io.BytesIO(body)})
        return request

    def _check(self, request) -> None:
        """What Django checks before its memo answers; _Refused if any would refuse."""
        if settings.SESSION_COOKIE_NAME not in request.COOKIES:
            raise _Refused("no session: 401")
        try:
            request.get_host()
        except Exception:
            raise _Refused("host") from None
        if self.security.process_request(request) is not None:
            raise _Refused("HTTPS redirect")
        self.csrf.process_request(request)
        self.csrf.process_view(request, _no_view, (), {})
        if request.META.get("CONTENT_LENGTH") not in (None, "", "0"):
            try:
                BuyIn.model_validate(json_object(request))
            except (ApiError, ValidationError):
                raise _Refused("body") from None

    def _recorded(self, environ, start_response, secure: bool):
        """Django's answer, recorded if it was the memo's."""
        seen = {}

        def recording(status, headers, exc_info=None):
            seen.update(status=status, headers=headers)
            return start_response(status, headers, exc_info)

        result = self.app(environ, recording)
        if not environ.get(soldout.MEMO_ANSWER):
            return result
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        headers = [(k, v) for k, v in seen["headers"] if k.lower() not in _PER_REQUEST]
        if not any(k.lower() == "set-cookie" for k, _ in headers):
            self.records[secure] = (seen["status"], headers, body)
            self.view = environ.get(VIEW, "")
        return [body]

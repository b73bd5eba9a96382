"""A buyer's request through a WSGI application in-process, as gunicorn would hand it over:
the orders.soldout_edge, config.metrics and live-view tests send buys this way."""

import io

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.middleware.csrf import _get_new_csrf_string, _mask_cipher_secret

from accounts.backends import SMS_CODE_BACKEND
from qbuy_core.sessions import SessionStore


def code_session(user) -> dict:
    """A session of ``user`` made by the SMS code login, with its CSRF cookie: ``cookie``
    (both), ``csrf_cookie`` (the CSRF one alone) and ``token`` (for X-CSRFToken)."""
    session = SessionStore()
    session.update(
        {
            SESSION_KEY: str(user.pk),
            BACKEND_SESSION_KEY: SMS_CODE_BACKEND,
            HASH_SESSION_KEY: user.get_session_auth_hash(),
        }
    )
    session.create()
    secret = _get_new_csrf_string()
    return {
        "cookie": f"SESSION_ID={session.session_key}; csrftoken={secret}",
        "csrf_cookie": f"csrftoken={secret}",
        "token": _mask_cipher_secret(secret),
    }


def environ(shop, *, method="POST", body=b"", ctype="application/json", **extra) -> dict:
    """A buy of ``shop["sale"]`` with ``shop``'s session (code_session); ``extra`` changes or,
    given None, removes a key."""
    env = {
        "REQUEST_METHOD": method,
        "PATH_INFO": f"/api/sales/{shop['sale'].pk}/buy",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "localhost",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "CONTENT_TYPE": ctype if body else "",
        "HTTP_COOKIE": shop["cookie"],
        "HTTP_X_CSRFTOKEN": shop["token"],
    }
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def call(app, env) -> tuple[str, dict, bytes]:
    """The answer: status line, headers (lower-case names), body."""
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen.update(status=status, headers=headers)

    result = app(env, start_response)
    body = b"".join(result)
    if hasattr(result, "close"):
        result.close()
    headers = {k.lower(): v for k, v in seen["headers"]}
    return seen["status"], headers, body

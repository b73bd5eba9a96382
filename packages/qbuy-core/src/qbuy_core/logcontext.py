"""Who a log line is about: the request, the task, the sale and the order, on every line.

A scope starts with ``begin``: a web request in RequestMetaMiddleware (``clear`` when its
response is closed), a Celery task in config/celery_app.py (``end``). Code inside it adds what
it learns with ``bind`` (the buy view the sale, order_reserve the order), and ``ContextFilter``
on the handlers copies it all onto each record, including those of Django, Celery and
gunicorn. Nothing is logged for it: the cost on the buy path is a dict update, and the fields'
formatting only where a line is logged anyway.

Context variables, not thread locals: each gevent greenlet of the worker (a task) has its own.
Django is not imported here: gunicorn's master reads this module (gunicorn.conf.py).
"""

import contextvars
import logging
import os

# The fields, in the order a text line shows them.
FIELDS = ("request_id", "task_id", "sale_id", "order")

# No scope: None, and bind() does nothing (a shell, a management command).
_fields: contextvars.ContextVar[dict | None] = contextvars.ContextVar("qbuy_log", default=None)

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def begin(**fields) -> contextvars.Token:
    """Start a scope with these fields; ``end`` with the token returned puts back the one
    before (a request inside nothing, a task inside the worker's loop)."""
    return _fields.set(fields)


def end(token: contextvars.Token) -> None:
    _fields.reset(token)


def clear() -> None:
    """End whatever scope there is (a request's, whose response is closed)."""
    _fields.set(None)


def bind(**fields) -> None:
    """Add fields to the current scope, until it ends: also the lines logged after the code
    that bound them returned (a 503 answered by the middleware still names the order)."""
    current = _fields.get()
    if current is not None:
        current.update(fields)


def current() -> dict:
    return dict(_fields.get() or {})


class ContextFilter(logging.Filter):
    """On a handler: the scope's fields onto each record it writes. A field the call gave
    itself (``extra=``) is kept."""

    def filter(self, record):
        fields = _fields.get()
        if fields:
            for name, value in fields.items():
                record.__dict__.setdefault(name, value)
        return True


class TextFormatter(logging.Formatter):
    """Plain lines for a terminal, the fields at the end of the message (before a traceback)."""

    def formatMessage(self, record):
        line = super().formatMessage(record)
        pairs = [f"{name}={getattr(record, name)}" for name in FIELDS if hasattr(record, name)]
        return f"{line} [{' '.join(pairs)}]" if pairs else line


def log_format() -> str:
    """LOG_FORMAT: ``json`` (a JSON object per line, for a log collector) or ``text``. The
    images run production settings and default to json; ``make local`` and the tests, text."""
    production = os.environ.get("DJANGO_SETTINGS_MODULE", "").endswith(".production")
    value = os.environ.get("LOG_FORMAT", "json" if production else "text")
    if value not in ("json", "text"):
        raise ValueError(f"LOG_FORMAT must be json or text, not {value!r}")
    return value


def formatter(log_format: str) -> dict:
    """The ``logging.config`` formatter of a LOG_FORMAT: for Django's LOGGING (which Celery
    applies too) and gunicorn's own logs alike."""
    if log_format == "json":
        return {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": FORMAT,
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    return {"()": "qbuy_core.logcontext.TextFormatter", "fmt": FORMAT}

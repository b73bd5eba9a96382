"""config.postgres: the health check of a reused connection asks the socket, not Postgres."""

import time

import psycopg
import pytest
from django.conf import settings
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


def next_request():
    """What Django does between two requests: the next query checks the connection again."""
    connection.close_if_unusable_or_obsolete()
    assert connection.health_check_done is False


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_the_engine_is_the_one_in_use():
    assert settings.DATABASES["default"]["ENGINE"] == "config.postgres"
    assert type(connection._connections["default"]).__module__ == "config.postgres.base"


def test_a_healthy_connection_is_checked_without_a_query(monkeypatch):
    pid = backend_pid()
    next_request()

    def probe():
        raise AssertionError("SELECT 1 sent")

    monkeypatch.setattr(connection, "is_usable", probe)
    assert backend_pid() == pid  # same connection, no probe


def test_a_connection_the_server_ended_is_replaced_before_the_next_query():
    pid = backend_pid()
    db = settings.DATABASES["default"]
    dsn = f"host={db['HOST']} port={db['PORT']} user={db['USER']} dbname={db['NAME']}"
    with psycopg.connect(dsn, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + 5
    while connection._idle_and_open():  # the server's goodbye reaches the socket
        assert time.monotonic() < deadline
        time.sleep(0.01)
    next_request()

    assert backend_pid() != pid  # a new connection, and no error

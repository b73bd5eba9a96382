"""What the Postgres the tests talk to is doing, seen from a test."""

from django.db import connection


def lock_waiters() -> int:
    """Sessions of the test database waiting on a lock (an order task on a held row)."""
    with connection.cursor() as cursor:
        # Inside a transaction Postgres keeps serving its first snapshot of pg_stat_activity.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0]

"""gunicorn's access line under LOG_FORMAT=json: a record whose fields are the request's.

gunicorn builds its Apache-style line from every atom it knows (each request header, the time
through strftime, the user agent...) into one string, which the JSON formatter then wraps as
a message: a buy's line cost ~30 µs that way, the largest part of what the JSON logs added to
a sold-out answer (issue 21's make bench-compare). Here the line carries what a reader of a
JSON log filters on, as fields: method, path, status, bytes, seconds and the client's address
(the request, sale and order come from qbuy_core.logcontext, like every line's). The referrer
and the user agent are nginx's access log's to keep.
"""

from gunicorn import glogging


class JsonAccessLogger(glogging.Logger):
    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        status = resp.status
        if isinstance(status, str):
            status = int(status.split(None, 1)[0])
        self.access_log.info(
            "%s %s %s",
            environ["REQUEST_METHOD"],
            environ["RAW_URI"],
            status,
            extra={
                "remote": environ.get("REMOTE_ADDR", "-"),
                "status": status,
                "bytes": resp.sent,
                "seconds": request_time.total_seconds(),
            },
        )

"""gunicorn settings; every value can be overridden from the environment (GUNICORN_*)."""

import multiprocessing
import os

from qbuy_core import logcontext

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# Sync workers: the buy path does one Redis round trip per request, so requests are short and
# CPU-bound; 2 x cores + 1 is gunicorn's own rule of thumb.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
# Connections the kernel completes before a worker accepts them (capped by net.core.somaxconn,
# 4096 on current kernels). At a sale's opening second nginx opens one per waiting buyer; 2048
# (gunicorn's default) overflowed at 5,000 buyers: nginx's connects timed out (503s).
backlog = int(os.environ.get("GUNICORN_BACKLOG", "4096"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# A request line as long as nginx reads (large_client_header_buffers: 8 KB) reaches Django,
# which refuses bad parameters in JSON; gunicorn's own 4094 answered 4-8 KB ones with an HTML
# 414 (Schemathesis found one: a query of 4,268 bytes). 8190 is the most gunicorn allows.
limit_request_line = int(os.environ.get("GUNICORN_LIMIT_REQUEST_LINE", "8190"))
# Worker recycling is off: at flash-sale rates 2,000 requests came every 1.5-4 s, and each
# restart cost 35-40 % of throughput, a p99 five times longer and the in-process caches (issue
# 10). Set it only to contain a leak, and high (a restart per minute at most, at peak).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 10
accesslog = "-"
errorlog = "-"
# LOG_FORMAT=json: gunicorn's own lines (start-up, workers, the access line) are JSON objects
# like the application's; text keeps gunicorn's format. The access line is logged before the
# response is closed, so it names the request, and a buy's its sale and order, like the
# application's lines (qbuy_core.logcontext); no line is added.
if logcontext.log_format() == "json":
    logger_class = "qbuy_core.access_log.JsonAccessLogger"
    _stream = {"class": "logging.StreamHandler", "formatter": "line", "filters": ["context"]}
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": logcontext.formatter("json")},
        "filters": {"context": {"()": "qbuy_core.logcontext.ContextFilter"}},
        "handlers": {
            "error": {**_stream, "stream": "ext://sys.stderr"},
            "access": {**_stream, "stream": "ext://sys.stdout"},
        },
        "root": {"handlers": ["error"], "level": "INFO"},
        "loggers": {
            "gunicorn.error": {"handlers": ["error"], "propagate": False},
            "gunicorn.access": {"handlers": ["access"], "propagate": False},
        },
    }
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn >= 25.1 opens a control socket for `gunicornc` in $HOME/.gunicorn/ (HOME is /app in
# the image): nothing here uses it, the orchestrator manages gunicorn by signals, and on a
# read-only root filesystem it only logs "Control server error" at every start.
control_socket_disable = True

# Metrics (qbuy_core.metrics): with METRICS_PORT set, the workers write their values to files
# in PROMETHEUS_MULTIPROC_DIR (a fresh directory if none is given) and the master serves their
# sum on that port. Set here, in the master, before any process imports prometheus_client.
metrics_port = os.environ.get("METRICS_PORT", "")
if metrics_port and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="qbuy-metrics-")


def on_starting(server):
    if metrics_port:
        from qbuy_core import metrics

        os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
        metrics.clean(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def when_ready(server):
    if metrics_port:
        from qbuy_core import metrics

        metrics.serve(metrics_port)


def child_exit(server, worker):
    if metrics_port:
        from qbuy_core import metrics

        metrics.process_exited(worker.pid)

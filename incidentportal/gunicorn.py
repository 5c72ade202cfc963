"""Gunicorn settings for production: `gunicorn -c python:incidentportal.gunicorn incidentportal.wsgi`.

Threads as well as processes: a request spends much of its time waiting on PostgreSQL, and the threads of one
process share the integration-key cache, the rate limiter's reserved chunks and the ingestion group commit
(incidents.alerting.services.group_commit.GroupCommit). Every value can be overridden on the
command line or with GUNICORN_* / WEB_* environment variables.
"""

import os

from prometheus_client import multiprocess

bind = os.environ.get("WEB_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
# Two processes per core: gunicorn's workers compete to accept connections, and a burst of new keep-alive
# connections can land on one worker while another stays idle; with one worker per core that left a core unused
# (measured: 32 connections split 32/0 between two workers halved throughput), with two per core it cannot.
workers = int(os.environ.get("WEB_WORKERS", 2 * (os.cpu_count() or 1)))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", 4))
# Keep webhook senders' and browsers' connections open between requests (behind a proxy, keep this above the
# proxy's idle timeout).
keepalive = int(os.environ.get("WEB_KEEPALIVE", 30))
backlog = 2048
# The worker heartbeat file: in memory, not on a disk that may stall (gunicorn's advice for containers).
SHARED_MEMORY = "/dev/shm"  # noqa: S108 -- gunicorn creates its own unlinked file there, mode 0600
worker_tmp_dir = SHARED_MEMORY if os.path.isdir(SHARED_MEMORY) else None
# Replace a worker after this many requests (jittered), so a slow leak cannot grow without bound.
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", 100_000))
max_requests_jitter = max_requests // 10
timeout = int(os.environ.get("WEB_TIMEOUT", 30))
graceful_timeout = 30
accesslog = os.environ.get("WEB_ACCESS_LOG") or None
loglevel = os.environ.get("WEB_LOG_LEVEL", "warning")
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


# Prometheus multiprocess mode (PROMETHEUS_MULTIPROC_DIR): each worker writes its request metrics to files there.
# Start from an empty directory, and retire a worker's live gauges when it exits.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")


def on_starting(server):
    if _metrics_dir and os.path.isdir(_metrics_dir):
        for name in os.listdir(_metrics_dir):
            if name.endswith(".db"):
                os.remove(os.path.join(_metrics_dir, name))


def child_exit(server, worker):
    if _metrics_dir:
        multiprocess.mark_process_dead(worker.pid)

"""Reliability tests start real Celery worker and beat processes (tests.reliability.harness) against Redis and the
test PostgreSQL database. Data must be committed for them to see it: these tests use transactional_db
(serialized_rollback keeps the guide's seeded rows for the tests after them)."""

from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from .harness import Cluster

WORKER_APPLICATION_NAME = "incidentportal-reliability-worker"


def _database_url() -> str:
    db = connection.settings_dict
    user = quote(db.get("USER") or "")
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    # The application name lets the clean-up below end only the workers' sessions, never the live server's.
    return f"postgres://{auth}{host}{port}/{db['NAME']}?application_name={WORKER_APPLICATION_NAME}"


@pytest.fixture
def redis_client():
    import redis

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def make_cluster(tmp_path, redis_client):
    """make_cluster(**env) -> Cluster on this test's database and broker; every process is killed afterwards."""
    if connection.vendor != "postgresql" or not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("reliability tests need PostgreSQL and Redis")
    clusters = []

    def make(**extra):
        cluster = Cluster(
            database_url=_database_url(),
            redis_url=settings.CELERY_BROKER_URL,
            work_dir=tmp_path / f"cluster{len(clusters)}",
            **extra,
        )
        clusters.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in clusters:
            cluster.stop()
        # Workers held connections to the test database: make sure they are gone before it is flushed.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = %s",
                [WORKER_APPLICATION_NAME],
            )

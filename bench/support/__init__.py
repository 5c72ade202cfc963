"""What the benchmark scripts share (a package, so `make bench`'s `bench/*.py` loop does not run it): the server's
admin URL, psql, a free loopback port."""

import os
import socket
import subprocess
import urllib.parse

ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def pg_url(name: str) -> str:
    """The URL of database `name` on the benchmark's PostgreSQL server."""
    return urllib.parse.urlparse(ADMIN_URL)._replace(path=f"/{name}").geturl()


def psql(url: str, sql: str) -> str:
    return subprocess.run(
        ["psql", url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], check=True, capture_output=True, text=True
    ).stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

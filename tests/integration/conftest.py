"""Real PostgreSQL and Redis for the integration suite: a fresh database and a flushed Redis db per test."""

import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest
import redis
from sqlalchemy.engine import make_url

from tests.conftest import require_service


@pytest.fixture
def pg_url() -> Iterator[str]:
    base = make_url(require_service("BROKER_TEST_DATABASE_URL").replace("postgresql+psycopg://", "postgresql://"))
    name = f"broker_it_{secrets.token_hex(4)}"
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield base.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def worker_redis_db(url: str) -> str:
    """Under pytest-xdist, each test process gets its own Redis database (the given one, then the ones below it), so
    one process' flush never empties another's queues."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    offset = int(worker.removeprefix("gw") or 0)
    if not offset:
        return url
    parsed = make_url(url)
    db = int(parsed.database or 0) - offset
    if db < 0:
        raise RuntimeError(f"{url}: no Redis database left below it for xdist worker {worker}")
    return parsed.set(database=str(db)).render_as_string(hide_password=False)


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = worker_redis_db(require_service("BROKER_TEST_REDIS_URL"))
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()

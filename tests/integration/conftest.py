"""Real PostgreSQL and Redis for the integration suite: a fresh database and a flushed Redis db per test."""

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


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = require_service("BROKER_TEST_REDIS_URL")
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()

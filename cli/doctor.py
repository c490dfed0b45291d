"""``broker doctor`` and the start-up guard of the split roles: is this setup one that can work?

The split roles (``broker api``, ``planner``, ``worker``) only work together through a shared queue (Redis) and a
database every host reaches (PostgreSQL); without them each process quietly runs alone, so they refuse to start.
"""

import asyncio
from dataclasses import dataclass

import httpx
import redis

from broker.catalogue import ProviderConfig
from broker.core import Core
from broker.migrate import schema_is_current
from broker.settings import Settings
from providers.registry import kind_of

CHECK_TIMEOUT_SECONDS = 5.0  #: each reachability check (Redis, a provider) gives up after this long


@dataclass
class Finding:
    """One check: what was checked, whether it is fine, and what was seen (or what to do)."""

    name: str
    ok: bool
    detail: str


def split_problems(settings: Settings, single_host: bool = False) -> list[str]:
    """Why the split roles cannot work together with these settings (nothing when they can); ``single_host``:
    every role runs on this one machine, where they may share a SQLite file."""
    problems = []
    if not settings.redis_url:
        problems.append("REDIS_URL is not set: the api, planner and worker processes share work through Redis; "
                        "without it each has a queue of its own and batches never run. Set REDIS_URL=redis://…, "
                        "or run everything in one process with `broker serve`.")
    if settings.is_sqlite and not single_host:
        problems.append(f"DATABASE_URL is SQLite ({settings.database_url}): a SQLite file cannot be shared by "
                        "processes on several hosts. Set DATABASE_URL=postgresql://…, run everything in one "
                        "process with `broker serve`, or pass --single-host if every role runs on this machine.")
    return problems


def _database(core: Core) -> Finding:
    try:
        current, revision = schema_is_current(core.engine)
    except Exception as exc:
        return Finding("database", False, f"{core.settings.database_url}: {exc}")
    if not current:
        return Finding("database", False, f"schema at revision {revision}, not the newest: run `broker db upgrade`")
    return Finding("database", True, f"{core.engine.url.render_as_string()} (schema {revision})")


def _redis(settings: Settings) -> Finding:
    if not settings.redis_url:
        return Finding("redis", True, "not set: in-process queue (fine for `broker serve` alone)")
    try:
        redis.Redis.from_url(settings.redis_url, socket_timeout=CHECK_TIMEOUT_SECONDS,
                             socket_connect_timeout=CHECK_TIMEOUT_SECONDS).ping()
    except redis.RedisError as exc:
        return Finding("redis", False, f"{settings.redis_url}: {exc}")
    return Finding("redis", True, settings.redis_url)


def _storage(core: Core) -> Finding:
    try:
        core.store.check()
    except Exception as exc:
        return Finding("storage", False, f"{core.store.describe()}: {type(exc).__name__}: {exc}")
    return Finding("storage", True, f"{core.store.describe()} (wrote, read and deleted a probe object)")


async def _provider(provider: ProviderConfig) -> Finding:
    name = f"provider {provider.name}"
    if provider.api_key_env and not provider.api_key():
        return Finding(name, False, f"{provider.api_key_env} is not set (the provider's key variable)")
    try:
        async with kind_of(provider).client(provider) as client:
            response = await client.get("models", timeout=CHECK_TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        return Finding(name, False, f"{provider.base_url} unreachable: {type(exc).__name__}: {exc}")
    if response.status_code in (401, 403):
        return Finding(name, False, f"{provider.base_url} refused the key in {provider.api_key_env or '(none)'}: "
                                    f"HTTP {response.status_code}")
    return Finding(name, True, f"{provider.base_url} answered HTTP {response.status_code}")


async def _providers(core: Core) -> list[Finding]:
    return list(await asyncio.gather(*(_provider(p) for p in core.catalogue.providers.values())))


def run_checks(settings: Settings, split: bool = True, providers: bool = True) -> list[Finding]:
    """Every check, in order: (with ``split``) the settings the split roles need, database, Redis, storage, (with
    ``providers``) each provider."""
    findings = [Finding("split roles", False, problem) for problem in split_problems(settings)] if split else []
    try:
        core = Core.open(settings, migrate=False)
    except Exception as exc:  # a providers file that does not parse, a storage URL of an unknown kind...
        return [*findings, Finding("configuration", False, f"{type(exc).__name__}: {exc}")]
    try:
        findings += [_database(core), _redis(settings), _storage(core)]
        if providers:
            findings += asyncio.run(_providers(core))
    finally:
        core.engine.dispose()
    return findings

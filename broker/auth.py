"""API keys: admin keys (the whole organisation) and project keys (one project, scope ``all`` or ``read_only``).

Values are random, shown once (at creation and rotation) and stored only as a SHA-256 digest. A rotated key's old
value keeps working until its grace period ends. Every use stamps ``last_used_at`` (at most once a minute) and the
first use from a new address is an audit event.
"""

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import and_, or_, text
from sqlmodel import Session, col, select

from broker.audit import Actor, record
from broker.errors import Unauthorized
from broker.ids import new_id, now
from broker.tables import ApiKey, ApiKeyAddress, Project

KEY_PREFIX = "sk-ib-"  #: every broker key starts with this, so it is recognisable in logs and scanners
ADMIN_KEY_PREFIX = KEY_PREFIX + "admin-"  #: admin keys say so in their value too
DEFAULT_PROJECT = "default"  #: the project embedded mode, ``--no-auth`` and admin keys without a project use
LAST_USED_RESOLUTION_SECONDS = 60  #: ``last_used_at`` is written at most this often per key, not on every call
REDACTED_SUFFIX_CHARS = 4  #: characters of the value kept for ``redacted_value``
ADMIN, PROJECT = "admin", "project"
SCOPES = ("all", "read_only")


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's id (None with authentication off), kind, scope and project (admins: None)."""

    key_id: str | None
    kind: str
    scope: str
    project_id: str | None
    ip: str | None

    @property
    def actor(self) -> Actor:
        return Actor(self.key_id, self.kind, self.ip)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def get_or_create_project(session: Session, name: str) -> Project:
    project = session.exec(select(Project).where(col(Project.name) == name)).first()
    if project is None:
        project = Project(id=new_id("proj"), name=name, created_at=now())
        session.add(project)
        session.flush()
    return project


def new_value(kind: str) -> str:
    return (ADMIN_KEY_PREFIX if kind == ADMIN else KEY_PREFIX) + secrets.token_urlsafe(32)


def set_value(row: ApiKey, value: str) -> None:
    row.key_hash, row.prefix, row.suffix = hash_key(value), value[:10], value[-REDACTED_SUFFIX_CHARS:]


def issue_key(session: Session, kind: str, project_id: str | None = None, *, name: str = "", scope: str = "all",
              expires_at: int | None = None, monthly_budget_usd: float | None = None,
              value: str | None = None) -> tuple[ApiKey, str]:
    """Store a new key and return its row and plaintext (the only time the value is seen)."""
    value = value or new_value(kind)
    row = ApiKey(id=new_id("key"), kind=kind, project_id=project_id, name=name, scope=scope, key_hash="",
                 prefix="", created_at=now(), expires_at=expires_at, monthly_budget_usd=monthly_budget_usd)
    set_value(row, value)
    session.add(row)
    session.flush()
    return row, value


def create_key(session: Session, project_id: str) -> str:
    """A new project key (scope ``all``) for the project; returns its plaintext."""
    return issue_key(session, PROJECT, project_id)[1]


def redacted(row: ApiKey) -> str:
    return f"{row.prefix}...{row.suffix}"


def authenticate(session: Session, value: str, ip: str | None) -> Caller:
    """The caller a key value stands for; 401 for an unknown, revoked, expired or archived project's key."""
    t = now()
    digest = hash_key(value)
    row = session.exec(select(ApiKey).where(
        col(ApiKey.revoked_at).is_(None),
        or_(col(ApiKey.key_hash) == digest,
            and_(col(ApiKey.previous_hash) == digest, col(ApiKey.previous_valid_until) > t)),
    )).first()
    if row is None:
        raise Unauthorized("Incorrect API key provided.", code="invalid_api_key")
    if row.expires_at is not None and row.expires_at <= t:
        raise Unauthorized("This API key has expired.", code="invalid_api_key")
    if row.kind == PROJECT:
        project = session.get(Project, row.project_id)
        if project is None or project.status != "active":
            raise Unauthorized("This API key's project is archived.", code="invalid_api_key")
    caller = Caller(row.id, row.kind, row.scope, row.project_id, ip)
    _note_use(session, row, caller, t)
    return caller


def _note_use(session: Session, row: ApiKey, caller: Caller, t: int) -> None:
    if row.last_used_at is None or t - row.last_used_at >= LAST_USED_RESOLUTION_SECONDS:
        row.last_used_at = t
        session.add(row)
    if caller.ip is None or session.get(ApiKeyAddress, (row.id, caller.ip)) is not None:
        return
    added = session.connection().execute(  # two first calls at once: one of them records the event
        text("INSERT INTO api_key_address (api_key_id, ip, first_seen_at) VALUES (:k, :ip, :t) "
             "ON CONFLICT DO NOTHING"), {"k": row.id, "ip": caller.ip, "t": t}).rowcount
    if added:
        record(session, caller.actor, "api_key.used_from_new_ip", project_id=row.project_id, object_id=row.id,
               details={"ip_address": caller.ip})

"""Projects and API keys. Keys are random, shown once, and stored only as a SHA-256 digest."""

import hashlib
import secrets

from sqlmodel import Session, col, select

from broker.errors import Unauthorized
from broker.ids import new_id, now
from broker.tables import ApiKey, Project

KEY_PREFIX = "sk-ib-"  #: every broker key starts with this, so it is recognisable in logs and scanners
DEFAULT_PROJECT = "default"  #: the project embedded mode and ``--no-auth`` use


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def get_or_create_project(session: Session, name: str) -> Project:
    project = session.exec(select(Project).where(col(Project.name) == name)).first()
    if project is None:
        project = Project(id=new_id("proj"), name=name, created_at=now())
        session.add(project)
        session.flush()
    return project


def create_key(session: Session, project_id: str) -> str:
    """Store a new key for the project and return its plaintext (the only time it is seen)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(id=new_id("key"), project_id=project_id, key_hash=hash_key(key), prefix=key[:10],
                       created_at=now()))
    return key


def project_for_key(session: Session, key: str) -> str:
    row = session.exec(
        select(ApiKey).where(col(ApiKey.key_hash) == hash_key(key), col(ApiKey.revoked_at).is_(None))
    ).first()
    if row is None:
        raise Unauthorized("Incorrect API key provided.", code="invalid_api_key")
    return row.project_id

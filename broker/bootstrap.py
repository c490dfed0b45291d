"""The first admin key, without a shell on the database host.

With ``BROKER_ADMIN_KEY`` set, that value is an admin key (set again when it changes; the one it replaces is
revoked). Otherwise the first start creates one admin key, writes it to ``<data dir>/admin_key`` (mode 0600) and
returns it so the caller prints it once; later starts find an admin key and return none.
"""

import os
from pathlib import Path

from sqlmodel import Session, col, select

from broker.auth import ADMIN, hash_key, issue_key
from broker.ids import now
from broker.settings import Settings
from broker.tables import ApiKey

ADMIN_KEY_FILE = "admin_key"  #: under the data dir: the value of the admin key the first start created
ENV_KEY_NAME = "BROKER_ADMIN_KEY"  #: name of the admin key that the environment variable sets


def admin_key_file(settings: Settings) -> Path:
    return settings.data_dir / ADMIN_KEY_FILE


def ensure_admin_key(session: Session, settings: Settings) -> str | None:
    """Make sure an admin key exists; returns the value of one created now (to print once), else None."""
    live = col(ApiKey.revoked_at).is_(None)
    if settings.admin_key:
        digest = hash_key(settings.admin_key)
        for old in session.exec(select(ApiKey).where(col(ApiKey.name) == ENV_KEY_NAME, live)):
            if old.key_hash != digest:
                old.revoked_at = now()
                session.add(old)
        if session.exec(select(ApiKey).where(col(ApiKey.key_hash) == digest)).first() is None:
            issue_key(session, ADMIN, name=ENV_KEY_NAME, value=settings.admin_key)
        return None
    if session.exec(select(ApiKey).where(col(ApiKey.kind) == ADMIN, live)).first() is not None:
        return None
    _, value = issue_key(session, ADMIN, name="bootstrap")
    _write_private(admin_key_file(settings), value)
    return value


def _write_private(path: Path, value: str) -> None:
    """Write ``value`` to a file only its owner can read (created with mode 0600, never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")

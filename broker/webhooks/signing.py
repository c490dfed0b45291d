"""Standard Webhooks signing (what ``openai.OpenAI().webhooks.unwrap`` verifies) and the secrets that sign.

Headers: ``webhook-id`` (the event id, the same on every attempt), ``webhook-timestamp`` (unix seconds of this
attempt) and ``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``; secrets are
``whsec_<base64 key>``. Registered endpoints have their own secret; deliveries to a batch's ``webhook_url`` are
signed with the project's default secret (``GET /v1/webhooks/secret``).
"""

import base64
import secrets
import time
from datetime import UTC, datetime

from sqlalchemy import Connection, text
from standardwebhooks import Webhook

from broker.ids import now

SECRET_PREFIX = "whsec_"  #: Standard Webhooks' secret prefix, which the SDK strips before base64-decoding
SECRET_BYTES = 32  #: HMAC-SHA256 key length


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def signed_headers(secret: str, event_id: str, payload: str, at: float | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers for sending ``payload`` (the exact body text) now or at ``at``."""
    timestamp = datetime.fromtimestamp(int(time.time() if at is None else at), UTC)
    signature = Webhook(secret).sign(msg_id=event_id, timestamp=timestamp, data=payload)
    return {"webhook-id": event_id, "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": signature}


def default_secret(conn: Connection, project_id: str) -> str:
    """The project's default secret, created on first use (concurrent first uses agree on one)."""
    query = text("SELECT secret FROM webhook_secret WHERE project_id = :p")
    if (secret := conn.execute(query, {"p": project_id}).scalar()) is not None:
        return str(secret)
    conn.execute(
        text("INSERT INTO webhook_secret (project_id, secret, created_at) VALUES (:p, :s, :t) "
             "ON CONFLICT (project_id) DO NOTHING"),
        {"p": project_id, "s": new_secret(), "t": now()},
    )
    return str(conn.execute(query, {"p": project_id}).scalar_one())

"""Enqueueing events into the outbox (``webhook_delivery``), in SQL, so they survive any restart.

A batch that ends emits ``batch.<status>``: one outbox row for its own ``webhook_url`` (signed with the project's
default secret) and one per enabled endpoint of its project subscribed to that type. Every row of one event
carries the same event id, which is also the ``webhook-id`` header on every attempt.
"""

import logging

import orjson
from sqlalchemy import Connection, text

from broker.ids import new_id, now
from broker.webhooks.signing import default_secret
from schemas.webhooks import EventData, WebhookEvent, WebhookEventType

log = logging.getLogger(__name__)
BATCH_EVENTS: dict[str, WebhookEventType] = {
    "completed": "batch.completed", "failed": "batch.failed", "expired": "batch.expired",
    "cancelled": "batch.cancelled",
}  #: final batch status -> the event it emits


def enqueue_batch_event(conn: Connection, batch_id: str) -> int:
    """Queue the event for a batch that has just reached a final status, in the caller's transaction.

    Returns how many deliveries were queued (0 when the batch's status emits no event or nobody listens).
    """
    row = conn.execute(
        text("SELECT status, project_id, webhook_url FROM batch WHERE id = :id"), {"id": batch_id}
    ).one_or_none()
    if row is None or row[0] not in BATCH_EVENTS:
        return 0
    status, project_id, webhook_url = row
    event = WebhookEvent(id=new_id("evt"), type=BATCH_EVENTS[status], created_at=now(), data=EventData(id=batch_id))
    targets: list[tuple[str | None, str]] = []
    if webhook_url:
        default_secret(conn, project_id)  # exists before the first delivery, so the user can read it
        targets.append((None, webhook_url))
    endpoints = conn.execute(
        text("SELECT id, url, events FROM webhook_endpoint WHERE project_id = :p AND enabled = :yes ORDER BY id"),
        {"p": project_id, "yes": True},
    )
    targets += [(endpoint_id, url) for endpoint_id, url, events in endpoints if event.type in orjson.loads(events)]
    if targets:
        payload, t = event.model_dump_json(), now()
        conn.execute(
            text("INSERT INTO webhook_delivery (id, project_id, endpoint_id, url, event_id, event_type, payload, "
                 "status, attempts, next_attempt_at, created_at) "
                 "VALUES (:id, :p, :e, :url, :evt, :type, :payload, 'pending', 0, :t, :t)"),
            [{"id": new_id("whdel"), "p": project_id, "e": endpoint_id, "url": url, "evt": event.id,
              "type": event.type, "payload": payload, "t": t} for endpoint_id, url in targets],
        )
        log.info("batch %s: %s queued for %d webhook target(s)", batch_id, event.type, len(targets))
    return len(targets)


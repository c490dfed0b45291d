"""Registered webhook endpoints and the delivery log, scoped to the caller's project (invariant 8)."""

import math
import time
from collections.abc import Sequence

import orjson
from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from broker.access import get_owned, page
from broker.errors import Conflict, InvalidRequest
from broker.ids import new_id, now
from broker.tables import WebhookDelivery as DeliveryRow
from broker.tables import WebhookEndpoint as EndpointRow
from broker.webhooks.signing import default_secret, new_secret
from broker.webhooks.ssrf import require_safe_url
from schemas.webhooks import (
    WEBHOOK_EVENT_TYPES,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointWithSecret,
)

MAX_ENDPOINTS_PER_PROJECT = 20  #: registered endpoints a project may hold at once


def create_endpoint(session: Session, project_id: str, req: WebhookEndpointCreate,
                    allow_hosts: Sequence[str]) -> EndpointRow:
    """Register ``req.url`` after the SSRF guard accepted it; the row's secret is shown to the caller once."""
    require_safe_url(req.url, allow_hosts, param="url")
    count = session.exec(select(func.count()).select_from(EndpointRow)
                         .where(col(EndpointRow.project_id) == project_id)).one()
    if count >= MAX_ENDPOINTS_PER_PROJECT:
        raise InvalidRequest(f"A project may register at most {MAX_ENDPOINTS_PER_PROJECT} webhook endpoints.",
                             param="url", code="too_many_webhook_endpoints")
    events = list(dict.fromkeys(req.events)) if req.events else list(WEBHOOK_EVENT_TYPES)
    row = EndpointRow(id=new_id("wh"), project_id=project_id, url=req.url, secret=new_secret(),
                      events=orjson.dumps(events).decode(), created_at=now())
    session.add(row)
    return row


def get_endpoint(session: Session, project_id: str, endpoint_id: str) -> EndpointRow:
    return get_owned(session, EndpointRow, endpoint_id, project_id, "webhook endpoint")


def list_endpoints(session: Session, project_id: str, after: str | None, limit: int) -> tuple[list[EndpointRow], bool]:
    return page(session, EndpointRow, col(EndpointRow.project_id) == project_id, after=after, limit=limit)


def delete_endpoint(session: Session, project_id: str, endpoint_id: str) -> None:
    """Remove the endpoint with its delivery log; a delivery in flight then records nothing."""
    row = get_endpoint(session, project_id, endpoint_id)
    session.execute(delete(DeliveryRow).where(col(DeliveryRow.endpoint_id) == row.id))
    session.delete(row)


def list_deliveries(session: Session, project_id: str, endpoint_id: str | None, after: str | None,
                    limit: int) -> tuple[list[DeliveryRow], bool]:
    """The delivery log, newest first: one endpoint's, or (``endpoint_id`` None) every delivery of the project."""
    filters = [col(DeliveryRow.project_id) == project_id]
    if endpoint_id is not None:
        filters.append(col(DeliveryRow.endpoint_id) == get_endpoint(session, project_id, endpoint_id).id)
    return page(session, DeliveryRow, *filters, after=after, limit=limit)


def redeliver(session: Session, project_id: str, delivery_id: str) -> DeliveryRow:
    """Queue the same event (same ``webhook-id``, same body) to the same target again, as a new delivery."""
    original = get_owned(session, DeliveryRow, delivery_id, project_id, "webhook delivery")
    if original.status == "pending":
        raise Conflict(f"Delivery {delivery_id} is still pending; it is retried on its own.",
                       code="delivery_pending")
    if original.endpoint_id is not None:
        endpoint = get_endpoint(session, project_id, original.endpoint_id)
        if not endpoint.enabled:
            raise Conflict(f"Webhook endpoint {endpoint.id} is disabled ({endpoint.disabled_reason}).",
                           code="webhook_endpoint_disabled")
    else:
        default_secret(session.connection(), project_id)
    row = DeliveryRow(id=new_id("whdel"), project_id=project_id, endpoint_id=original.endpoint_id, url=original.url,
                      event_id=original.event_id, event_type=original.event_type, payload=original.payload,
                      next_attempt_at=time.time(), created_at=now())
    session.add(row)
    return row


def project_secret(session: Session, project_id: str) -> str:
    return default_secret(session.connection(), project_id)


def endpoint_to_wire(row: EndpointRow) -> WebhookEndpoint:
    return WebhookEndpoint(id=row.id, url=row.url, events=orjson.loads(row.events), enabled=row.enabled,
                           disabled_reason=row.disabled_reason, created_at=row.created_at)


def endpoint_with_secret(row: EndpointRow) -> WebhookEndpointWithSecret:
    return WebhookEndpointWithSecret(**endpoint_to_wire(row).model_dump(), secret=row.secret)


def delivery_to_wire(row: DeliveryRow) -> WebhookDelivery:
    pending = row.status == "pending"
    return WebhookDelivery(
        id=row.id, endpoint_id=row.endpoint_id, url=row.url, event_id=row.event_id, event_type=row.event_type,
        status=row.status,
        attempts=row.attempts, next_attempt_at=math.ceil(row.next_attempt_at) if pending else None,
        last_status_code=row.last_status_code, last_error=row.last_error, created_at=row.created_at,
        delivered_at=row.delivered_at,
    )

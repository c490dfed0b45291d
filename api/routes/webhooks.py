"""``/v1/webhooks``: registered endpoints, the project's default secret, the delivery log and redelivery."""

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import ContextDep, ProjectDep, SessionDep
from api.openapi import errors
from broker.tables import WebhookDelivery as DeliveryRow
from broker.webhooks import endpoints as service
from schemas.pages import cursor_page
from schemas.webhooks import (
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointDeleted,
    WebhookEndpointList,
    WebhookEndpointWithSecret,
    WebhookSecret,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
Limit = Annotated[int, Query(ge=1, le=100)]


@router.post("", response_model=WebhookEndpointWithSecret)
def create_endpoint(body: WebhookEndpointCreate, ctx: ContextDep, project_id: ProjectDep,
                    session: SessionDep) -> WebhookEndpointWithSecret:
    row = service.create_endpoint(session, project_id, body, ctx.core.settings.webhook_allow_hosts)
    session.commit()
    return service.endpoint_with_secret(row)


@router.get("", response_model=WebhookEndpointList)
def list_endpoints(project_id: ProjectDep, session: SessionDep, after: str | None = None,
                   limit: Limit = 20) -> WebhookEndpointList:
    rows, has_more = service.list_endpoints(session, project_id, after, limit)
    data = [service.endpoint_to_wire(r) for r in rows]
    return cursor_page(WebhookEndpointList, data, has_more)


@router.get("/secret", response_model=WebhookSecret)
def project_secret(project_id: ProjectDep, session: SessionDep) -> WebhookSecret:
    """The secret that signs deliveries to batches' own ``webhook_url`` (created on first read)."""
    return WebhookSecret(secret=service.project_secret(session, project_id))


@router.get("/deliveries", response_model=WebhookDeliveryList)
def list_all_deliveries(project_id: ProjectDep, session: SessionDep, after: str | None = None,
                        limit: Limit = 20) -> WebhookDeliveryList:
    return _deliveries(*service.list_deliveries(session, project_id, None, after, limit))


@router.post("/deliveries/{delivery_id}/redeliver", response_model=WebhookDelivery, responses=errors(409))
def redeliver(delivery_id: str, project_id: ProjectDep, session: SessionDep) -> WebhookDelivery:
    row = service.redeliver(session, project_id, delivery_id)
    session.commit()
    return service.delivery_to_wire(row)


@router.get("/{endpoint_id}", response_model=WebhookEndpoint)
def retrieve_endpoint(endpoint_id: str, project_id: ProjectDep, session: SessionDep) -> WebhookEndpoint:
    return service.endpoint_to_wire(service.get_endpoint(session, project_id, endpoint_id))


@router.delete("/{endpoint_id}", response_model=WebhookEndpointDeleted)
def delete_endpoint(endpoint_id: str, project_id: ProjectDep, session: SessionDep) -> WebhookEndpointDeleted:
    service.delete_endpoint(session, project_id, endpoint_id)
    session.commit()
    return WebhookEndpointDeleted(id=endpoint_id)


@router.get("/{endpoint_id}/deliveries", response_model=WebhookDeliveryList)
def list_endpoint_deliveries(endpoint_id: str, project_id: ProjectDep, session: SessionDep,
                             after: str | None = None, limit: Limit = 20) -> WebhookDeliveryList:
    return _deliveries(*service.list_deliveries(session, project_id, endpoint_id, after, limit))


def _deliveries(rows: list[DeliveryRow], has_more: bool) -> WebhookDeliveryList:
    data = [service.delivery_to_wire(r) for r in rows]
    return cursor_page(WebhookDeliveryList, data, has_more)

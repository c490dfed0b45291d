"""Webhook wire shapes: events (OpenAI's shape), registered endpoints, secrets and the delivery log."""

from typing import Literal

from pydantic import BaseModel, Field

from schemas.requests import RequestBody

WebhookEventType = Literal["batch.completed", "batch.failed", "batch.expired", "batch.cancelled"]
WEBHOOK_EVENT_TYPES: tuple[str, ...] = ("batch.completed", "batch.failed", "batch.expired", "batch.cancelled")
DeliveryStatus = Literal["pending", "delivered", "failed"]


class EventData(BaseModel):
    id: str  #: the object the event is about (a batch id)


class WebhookEvent(BaseModel):
    """What a receiver gets: ``{"id":"evt_…","object":"event","type":…,"created_at":…,"data":{"id":…}}``."""

    id: str
    object: Literal["event"] = "event"
    type: WebhookEventType
    created_at: int
    data: EventData


class WebhookEndpointCreate(RequestBody):
    """Body of ``POST /v1/webhooks``; without ``events`` the endpoint receives every event type."""

    url: str
    events: list[WebhookEventType] | None = Field(default=None, min_length=1)


class WebhookEndpoint(BaseModel):
    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None = None
    created_at: int


class WebhookEndpointWithSecret(WebhookEndpoint):
    """The create response: the only time the endpoint's signing secret is shown."""

    secret: str


class WebhookEndpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[WebhookEndpoint]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class WebhookEndpointDeleted(BaseModel):
    id: str
    object: Literal["webhook_endpoint.deleted"] = "webhook_endpoint.deleted"
    deleted: bool = True


class WebhookSecret(BaseModel):
    """The project's default secret, which signs deliveries to a batch's own ``webhook_url``."""

    object: Literal["webhook_secret"] = "webhook_secret"
    secret: str


class WebhookDelivery(BaseModel):
    id: str
    object: Literal["webhook_delivery"] = "webhook_delivery"
    endpoint_id: str | None  #: None for a delivery to a batch's ``webhook_url``
    url: str
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: int | None  #: when the next attempt is due (pending deliveries only)
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: int
    delivered_at: int | None = None


class WebhookDeliveryList(BaseModel):
    object: Literal["list"] = "list"
    data: list[WebhookDelivery]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False

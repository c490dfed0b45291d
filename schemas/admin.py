"""Administration API wire shapes (OpenAI's ``/v1/organization/...``): projects, project and admin API keys,
audit logs. Our extensions ride as extra fields: budgets, default regions, model access, key scope and expiry."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_NAME_CHARS = 200  #: longest project or key name accepted
MAX_GRACE_SECONDS = 30 * 86_400  #: longest a rotated key's old value may keep working
DEFAULT_GRACE_SECONDS = 3600  #: a rotated key's old value keeps working this long unless told otherwise

Name = Field(min_length=1, max_length=MAX_NAME_CHARS)
Budget = Field(default=None, ge=0)


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Name
    monthly_budget_usd: float | None = Budget
    regions: list[str] | None = None
    allowed_models: list[str] | None = None  #: None: every model
    blocked_models: list[str] | None = None


class ProjectUpdate(BaseModel):
    """Only the fields sent change; ``null`` clears a budget, regions or a model list."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_CHARS)
    monthly_budget_usd: float | None = Budget
    regions: list[str] | None = None
    allowed_models: list[str] | None = None
    blocked_models: list[str] | None = None


class Project(BaseModel):
    id: str
    object: Literal["organization.project"] = "organization.project"
    name: str
    created_at: int
    archived_at: int | None = None
    status: Literal["active", "archived"]
    monthly_budget_usd: float | None = None
    month_to_date_cost_usd: float = 0.0
    regions: list[str] | None = None
    allowed_models: list[str] | None = None
    blocked_models: list[str] = Field(default_factory=list)


class ProjectList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Project]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=MAX_NAME_CHARS)
    scope: Literal["all", "read_only"] = "all"  #: project keys only; read_only keys get 403 on writes
    expires_at: int | None = Field(default=None, gt=0)  #: unix time the key stops working
    #: project keys: past this, dispatch stops for its batches and its interactive calls get 429
    monthly_budget_usd: float | None = Budget


class KeyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    expires_at: int | None = Field(default=None, gt=0)
    monthly_budget_usd: float | None = Budget


class KeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_period_seconds: int = Field(default=DEFAULT_GRACE_SECONDS, ge=0, le=MAX_GRACE_SECONDS)


class ProjectApiKey(BaseModel):
    object: Literal["organization.project.api_key"] = "organization.project.api_key"
    id: str
    name: str
    redacted_value: str
    created_at: int
    last_used_at: int | None = None
    expires_at: int | None = None
    project_id: str
    scope: Literal["all", "read_only"]
    monthly_budget_usd: float | None = None
    previous_value_expires_at: int | None = None  #: after a rotation: when the old value stops working


class ProjectApiKeyWithValue(ProjectApiKey):
    value: str  #: shown only in the answer to create and rotate


class AdminApiKey(BaseModel):
    object: Literal["organization.admin_api_key"] = "organization.admin_api_key"
    id: str
    name: str
    redacted_value: str
    created_at: int
    last_used_at: int | None = None
    expires_at: int | None = None
    previous_value_expires_at: int | None = None


class AdminApiKeyWithValue(AdminApiKey):
    value: str


class ProjectApiKeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ProjectApiKey]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class AdminApiKeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AdminApiKey]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class KeyDeleted(BaseModel):
    id: str
    object: Literal["organization.project.api_key.deleted", "organization.admin_api_key.deleted"]
    deleted: bool = True


class AuditLog(BaseModel):
    """One event; the object it concerns sits under a key named like its type (``"api_key.created": {…}``)."""

    model_config = ConfigDict(extra="allow")

    id: str
    object: Literal["organization.audit_log"] = "organization.audit_log"
    type: str
    effective_at: int
    project: dict[str, Any] | None = None  #: {id, name}
    actor: dict[str, Any]  #: {type: "api_key", ip_address, api_key: {id, type: admin | project}}


class AuditLogList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AuditLog]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class RateLimit(BaseModel):
    """A project's limit on one model (None: no limit of the project's own; the providers' limits still apply)."""

    object: Literal["project.rate_limit"] = "project.rate_limit"
    id: str
    model: str
    max_requests_per_1_minute: int | None = None
    max_tokens_per_1_minute: int | None = None


class RateLimitUpdate(BaseModel):
    """Only the fields sent change; ``null`` removes that limit."""

    model_config = ConfigDict(extra="forbid")

    max_requests_per_1_minute: int | None = Field(default=None, ge=1)
    max_tokens_per_1_minute: int | None = Field(default=None, ge=1)


class RateLimitList(BaseModel):
    object: Literal["list"] = "list"
    data: list[RateLimit]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False

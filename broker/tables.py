"""SQL tables (SQLModel). The database is the single source of truth (DESIGN.md invariant 1)."""

from sqlalchemy import BigInteger, Column, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from broker.history_tables import ProviderMinuteRow as ProviderMinuteRow  # one metadata: every table


class Project(SQLModel, table=True):
    id: str = Field(primary_key=True)
    name: str
    created_at: int
    monthly_budget_usd: float | None = None  #: dispatch stops for the rest of the calendar month (UTC) past it
    regions_json: str | None = Field(default=None, sa_column=Column(Text))  #: default constraints.regions
    status: str = "active"  #: active | archived (its keys stop working; admins still read its data)
    archived_at: int | None = None
    #: JSON list of the public model names the project may use; None = every model (broker/model_access.py)
    models_allowed_json: str | None = Field(default=None, sa_column=Column(Text))
    #: JSON list of model names the project may not use, whatever the allow list says
    models_blocked_json: str | None = Field(default=None, sa_column=Column(Text))


class ApiKey(SQLModel, table=True):
    """An admin key (``project_id`` None) or a project key; only a SHA-256 digest of the value is kept."""

    __tablename__ = "api_key"

    id: str = Field(primary_key=True)
    kind: str = "project"  #: project | admin
    project_id: str | None = Field(default=None, foreign_key="project.id", index=True)
    name: str = ""
    scope: str = "all"  #: all | read_only (project keys)
    key_hash: str = Field(unique=True)
    prefix: str
    suffix: str = ""  #: the value's last characters, for redacted_value
    created_at: int
    expires_at: int | None = None
    last_used_at: int | None = None
    revoked_at: int | None = None
    #: after a rotation the old value keeps working until ``previous_valid_until``
    previous_hash: str | None = Field(default=None, index=True)
    previous_valid_until: int | None = None
    monthly_budget_usd: float | None = None  #: past it: its batches' dispatch stops, its interactive calls get 429


class ProjectRateLimit(SQLModel, table=True):
    """A project's own requests and tokens per minute on one model, on top of the providers' limits."""

    __tablename__ = "project_rate_limit"

    project_id: str = Field(foreign_key="project.id", primary_key=True)
    model: str = Field(primary_key=True)
    rpm: int | None = None
    tpm: int | None = None


class ApiKeyAddress(SQLModel, table=True):
    """An address a key was used from; the first use from a new one is an audit event."""

    __tablename__ = "api_key_address"

    api_key_id: str = Field(foreign_key="api_key.id", primary_key=True)
    ip: str = Field(primary_key=True)
    first_seen_at: int


class AuditLog(SQLModel, table=True):
    """Who did what, when and from where (``GET /v1/organization/audit_logs``)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_effective_at", "effective_at"),)

    id: str = Field(primary_key=True)
    type: str
    effective_at: int
    actor_key_id: str | None = None
    actor_kind: str | None = None  #: admin | project
    ip: str | None = None
    project_id: str | None = None
    object_id: str | None = None
    details_json: str | None = Field(default=None, sa_column=Column(Text))


class StoredFile(SQLModel, table=True):
    __tablename__ = "file"
    __table_args__ = (
        Index("ix_file_project_id_id", "project_id", "id"),
        Index("ix_file_expires_at", "expires_at"),
    )

    id: str = Field(primary_key=True)
    project_id: str = Field(foreign_key="project.id")
    filename: str
    purpose: str
    bytes: int
    created_at: int
    expires_at: int | None = None
    status: str = "processed"
    path: str


class BatchRow(SQLModel, table=True):
    __tablename__ = "batch"
    __table_args__ = (
        Index("ix_batch_project_id_id", "project_id", "id"),
        Index("ix_batch_status_provider", "status", "provider"),
        Index("ix_batch_output_file_id", "output_file_id"),
        Index("ix_batch_project_id_status_id", "project_id", "status", "id"),  # the dashboard's filtered lists
    )

    id: str = Field(primary_key=True)
    project_id: str = Field(foreign_key="project.id")
    endpoint: str
    model: str | None = None
    provider: str | None = None
    input_file_id: str
    completion_window: str
    status: str
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors_json: str | None = Field(default=None, sa_column=Column(Text))
    total: int = 0
    completed: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    metadata_json: str | None = Field(default=None, sa_column=Column(Text))
    output_expires_after: int | None = None
    # --- extensions ---
    priority: int = 20
    priority_label: str = "normal"
    not_before: int | None = None
    constraints_json: str | None = Field(default=None, sa_column=Column(Text))
    webhook_url: str | None = None
    max_cost_usd: float | None = None
    route: str = "auto"
    #: a process working on this batch outside a line lease (validation, finalization) holds it until then
    claimed_until: float | None = None
    estimated_completion_at: int | None = None
    cost_usd: float = 0.0  #: sum of the batch's line costs so far
    #: lines ended so far, in commit order: numbers each ended line so result files only ever grow at the end
    result_seq: int = 0
    #: JSON {model: {"provider", "route", "not_before"}}: where and how each model's lines run (broker/routing.py)
    plan_json: str | None = Field(default=None, sa_column=Column(Text))
    #: JSON list of the providers the batch may use, in fallback order (after constraints); None = any
    eligible_json: str | None = Field(default=None, sa_column=Column(Text))
    api_key_id: str | None = None  #: the key that created the batch (spend per key)


class Line(SQLModel, table=True):
    """One request line of a batch, from acceptance to its final result."""

    __tablename__ = "line"
    __table_args__ = (
        UniqueConstraint("batch_id", "custom_id", name="uq_line_batch_custom_id"),
        Index("ix_line_batch_status_idx", "batch_id", "status", "idx"),
        Index("ix_line_provider_status_lease", "provider", "status", "lease_until"),
        Index("ix_line_batch_status_seq", "batch_id", "status", "result_seq"),
        Index("ix_line_remote_batch_id", "remote_batch_id"),
        #: lines ended lately (lines/s now) and recent failures by code, without reading the whole table
        Index("ix_line_status_finished_at", "status", "finished_at", "error_code"),
    )

    #: BIGINT on PostgreSQL; INTEGER on SQLite, where only that makes it the auto-assigned rowid
    id: int | None = Field(
        default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    )
    batch_id: str = Field(foreign_key="batch.id")
    idx: int
    custom_id: str
    body: str = Field(sa_column=Column(Text, nullable=False))
    provider: str
    #: pending -> queued (leased) -> succeeded | failed; native batch route: batched -> succeeded | failed | pending
    status: str = "pending"
    attempts: int = 0
    not_before: float = 0.0
    lease_until: float | None = None
    response_status: int | None = None
    response_body: str | None = Field(default=None, sa_column=Column(Text))
    request_id: str | None = None
    error_code: str | None = None
    error_message: str | None = Field(default=None, sa_column=Column(Text))
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0  #: actual usage x the price of the route the line took
    finished_at: float | None = None
    result_seq: int | None = None  #: position among the batch's ended lines (see BatchRow.result_seq)
    remote_batch_id: str | None = None  #: the native batch submission carrying this line (RemoteBatchRow.id)


class WebhookEndpoint(SQLModel, table=True):
    """A project's registered webhook receiver; its own secret signs what it is sent."""

    __tablename__ = "webhook_endpoint"
    __table_args__ = (Index("ix_webhook_endpoint_project_id_id", "project_id", "id"),)

    id: str = Field(primary_key=True)
    project_id: str = Field(foreign_key="project.id")
    url: str = Field(sa_column=Column(Text, nullable=False))
    secret: str
    events: str = Field(sa_column=Column(Text, nullable=False))  #: JSON list of subscribed event types
    enabled: bool = True
    disabled_reason: str | None = None
    first_failure_at: int | None = None  #: start of the current run of failed attempts (None after a success)
    created_at: int


class WebhookSecret(SQLModel, table=True):
    """A project's default signing secret, used for the per-batch ``webhook_url`` deliveries."""

    __tablename__ = "webhook_secret"

    project_id: str = Field(foreign_key="project.id", primary_key=True)
    secret: str
    created_at: int


class WebhookDelivery(SQLModel, table=True):
    """The outbox: one event for one target, from enqueued to delivered or failed (at least once)."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        Index("ix_webhook_delivery_status_next", "status", "next_attempt_at"),
        Index("ix_webhook_delivery_endpoint_id_id", "endpoint_id", "id"),
        Index("ix_webhook_delivery_project_id_id", "project_id", "id"),
    )

    id: str = Field(primary_key=True)
    project_id: str = Field(foreign_key="project.id")
    endpoint_id: str | None = Field(default=None, foreign_key="webhook_endpoint.id")  #: None: a batch's webhook_url
    url: str = Field(sa_column=Column(Text, nullable=False))
    event_id: str  #: sent as ``webhook-id``; the same on every attempt and redelivery, so receivers can dedupe
    event_type: str
    payload: str = Field(sa_column=Column(Text, nullable=False))
    status: str = "pending"  #: pending -> delivered | failed
    attempts: int = 0
    next_attempt_at: float  #: due time while pending; pushed forward by the deliverer that claims the row
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: int
    delivered_at: int | None = None


class ProviderStateRow(SQLModel, table=True):
    """What one worker process last saw of one provider (the API aggregates these for GET /v1/providers)."""

    __tablename__ = "provider_state"

    provider: str = Field(primary_key=True)
    worker_id: str = Field(primary_key=True)
    updated_at: float
    rpm_in_force: float | None = None
    tpm_in_force: float | None = None
    in_flight: int = 0
    calls: int = 0  #: calls in the last minute
    rate_limited: int = 0  #: of which answered 429
    p50_ms: float | None = None
    p95_ms: float | None = None
    circuit_open: bool = False  #: the process' circuit breaker skips this provider while another deployment remains


class ScheduleRow(SQLModel, table=True):
    """A cron expression in a time zone and the batch it creates at each run (``metadata.schedule_id`` added)."""

    __tablename__ = "schedule"
    __table_args__ = (
        Index("ix_schedule_project_id_id", "project_id", "id"),
        Index("ix_schedule_enabled_next_run_at", "enabled", "next_run_at"),
    )

    id: str = Field(primary_key=True)
    project_id: str = Field(foreign_key="project.id")
    cron: str
    timezone: str
    input_file_id: str | None = None  #: a stored batch file, or None when input_url provides the file at each run
    input_url: str | None = Field(default=None, sa_column=Column(Text))
    endpoint: str
    completion_window: str
    metadata_json: str | None = Field(default=None, sa_column=Column(Text))  #: the caller's pairs, without schedule_id
    priority: int = 20
    priority_label: str = "normal"
    constraints_json: str | None = Field(default=None, sa_column=Column(Text))
    webhook_url: str | None = None
    max_cost_usd: float | None = None
    route: str = "auto"
    enabled: bool = True
    created_at: int
    #: unix time of the next run; the planner that moves it on (compare-and-set) is the one that creates the batch
    next_run_at: int
    last_run_at: int | None = None
    last_batch_id: str | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))


class UsageDaily(SQLModel, table=True):
    """Usage and cost per project, day (UTC), provider, model and route, rolled up as lines end."""

    __tablename__ = "usage_daily"
    __table_args__ = (Index("ix_usage_daily_day", "day"),)  # a month's spend over every project

    project_id: str = Field(primary_key=True)
    day: str = Field(primary_key=True)  #: YYYY-MM-DD
    provider: str = Field(primary_key=True)
    model: str = Field(primary_key=True)
    route: str = Field(primary_key=True)
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class UsageKeyDaily(SQLModel, table=True):
    """Usage and cost per API key, day (UTC) and model, rolled up with ``usage_daily``."""

    __tablename__ = "usage_key_daily"

    api_key_id: str = Field(primary_key=True)
    day: str = Field(primary_key=True)  #: YYYY-MM-DD
    model: str = Field(primary_key=True)
    project_id: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class RemoteBatchRow(SQLModel, table=True):
    """Lines of one batch submitted together to a provider's native batch API, from submission to collection."""

    __tablename__ = "remote_batch"
    __table_args__ = (
        Index("ix_remote_batch_provider_status_poll", "provider", "status", "next_poll_at"),
        Index("ix_remote_batch_batch_id", "batch_id"),
    )

    id: str = Field(primary_key=True)
    batch_id: str = Field(foreign_key="batch.id")
    provider: str
    remote_id: str | None = None  #: the provider's batch id, once created
    status: str  #: submitting -> running -> ended
    lines: int
    estimated_cost_usd: float = 0.0  #: what its lines should cost: held against the batch's max_cost_usd meanwhile
    created_at: float
    submitted_at: float | None = None
    ended_at: float | None = None
    #: past this the remote batch is cancelled, so its unfinished lines still have time to run in real time
    cancel_after: float
    cancel_requested: bool = False
    next_poll_at: float
    claimed_until: float | None = None  #: a worker submitting, polling or collecting holds it until then
    remote_status: str | None = None  #: the provider's last reported status
    last_error: str | None = Field(default=None, sa_column=Column(Text))


class LeaderLease(SQLModel, table=True):
    """Who leads a role that must act once at a time (the planner): ``holder`` until ``until`` (unix seconds)."""

    __tablename__ = "leader_lease"

    name: str = Field(primary_key=True)
    holder: str | None = None
    until: float


class InteractiveCall(SQLModel, table=True):
    """An interactive (gateway) call holding or waiting for one of its provider's concurrency slots.

    Batch release counts ``waiting`` and ``running`` rows as taken (interactive calls come first); ended rows are
    kept for a couple of minutes for the per-minute counts of ``GET /v1/providers``.
    """

    __tablename__ = "interactive_call"
    __table_args__ = (Index("ix_interactive_call_provider_state", "provider", "state"),)

    id: str = Field(primary_key=True)
    provider: str
    project_id: str
    rank: int  #: lower is admitted first: the call's priority; flex calls rank behind every interactive one
    state: str  #: waiting -> running -> ended
    created_at: float
    lease_until: float  #: a row whose API process died stops counting after this (renewed while held)
    ended_at: float | None = None

"""The one settings object, read once from the environment (and ``.env``) and passed down."""

from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///data/broker.db"  #: embedded default: a SQLite file in ./data
DEFAULT_MAX_UPLOAD_BYTES = 1 << 30  #: 1 GiB; OpenAI's cap is 200 MB
DEFAULT_MAX_BATCH_LINES = 1_000_000  #: OpenAI's cap is 50,000
DEFAULT_LEASE_SECONDS = 8.0  #: a leased line is taken back when its worker has not renewed the lease this long
DEFAULT_PLANNER_INTERVAL = 0.25  #: seconds between planner ticks
DEFAULT_MAX_ATTEMPTS = 5  #: upstream calls per line before it fails for good
DEFAULT_BATCH_FILE_EXPIRES_AFTER = 30 * 86_400  #: seconds a batch input file lives without expires_after (OpenAI's)
DEFAULT_SIMULATOR_PORT = 8765  #: where `broker serve` runs the demo provider
#: seconds to wait after each failed webhook delivery attempt (then it fails): now, 5 s, 5 min, 30 min, 2 h ... 24 h
DEFAULT_WEBHOOK_RETRY_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0)


class Settings(BaseSettings):
    """Every setting, from ``BROKER_<NAME>`` (or the alias shown) in the environment or ``.env``. The docstring
    under each field is its description: ``broker config-docs`` writes docs/configuration.md from them."""

    model_config = SettingsConfigDict(env_prefix="BROKER_", env_file=".env", extra="ignore",
                                      use_attribute_docstrings=True)

    environment: str = "development"
    """A label for this deployment (development, staging, production)."""
    database_url: str = Field(
        DEFAULT_DATABASE_URL, validation_alias=AliasChoices("DATABASE_URL", "BROKER_DATABASE_URL")
    )
    """SQL database: sqlite:///path embedded, postgresql://user:pass@host/db for split roles."""
    redis_url: str | None = Field(None, validation_alias=AliasChoices("REDIS_URL", "BROKER_REDIS_URL"))
    """Redis for the shared queue and limits; unset: in-process queue (only `broker serve`)."""
    data_dir: Path = Path("data")
    """Local folder for the SQLite file, temporary files and (without storage_url) file bytes."""
    storage_url: str | None = None
    """Where file bytes live: s3://bucket/prefix (credentials, region and endpoint from the AWS_* variables) or
    file:///folder; unset: data_dir/files."""
    providers_file: Path | None = None
    """Provider catalogue (TOML, see providers.example.toml); unset: the demo provider on the simulator."""
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    """Largest file accepted by POST /v1/files (OpenAI's cap is 200 MB)."""
    max_batch_lines: int = DEFAULT_MAX_BATCH_LINES
    """Most lines in one batch's input file (OpenAI's cap is 50,000)."""
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    """A leased line is taken back when its worker has not renewed the lease this long."""
    planner_interval: float = DEFAULT_PLANNER_INTERVAL
    """Seconds between planner ticks (a new batch wakes an in-process planner at once)."""
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    """Upstream calls per line before it fails for good."""
    min_window_seconds: int = 60
    """Shortest completion_window accepted."""
    retry_base_seconds: float = 0.5
    """First backoff after a retryable upstream error; it doubles per attempt."""
    retry_max_seconds: float = 60.0
    """Longest backoff between attempts of one line."""
    worker_threads: int = 32
    """Threads taking messages per worker (a message only starts its calls: threads never bound them)."""
    auth_disabled: bool = False
    """Accept any API key (local experiments only)."""
    admin_key: str | None = None
    """An admin key's value (compose reads it from broker.env); without it the first start creates one."""
    http_header_timeout: float = 10.0
    """Seconds a client may take to send a request's line and headers before its connection is closed."""
    http_body_timeout: float = 30.0
    """Seconds a client's request body may go without a byte arriving before its connection is closed."""
    interactive_max_wait_seconds: float = 10.0
    """Seconds an interactive call waits for provider capacity before a 429 (a call may ask for less with the
    x-broker-max-wait header)."""
    simulator_port: int = DEFAULT_SIMULATOR_PORT
    """Port of the demo provider `broker serve` runs on loopback (a free one is taken when it is busy)."""
    batch_file_expires_after: int | None = DEFAULT_BATCH_FILE_EXPIRES_AFTER
    """Files of purpose batch uploaded without expires_after expire this long (seconds) after upload; None: never."""
    metrics_port: int | None = None
    """Where a planner or worker process serves its Prometheus /metrics; None: not served (the API serves its own)."""
    metrics_host: str = "0.0.0.0"
    """The address a planner's or worker's /metrics listens on."""
    webhook_allow_hosts: list[str] = Field(default_factory=list)
    """Webhook targets allowed despite a non-public address: hostnames, IPs or CIDRs (e.g. 10.0.0.0/8)."""
    webhook_retry_schedule: list[float] = Field(default_factory=lambda: list(DEFAULT_WEBHOOK_RETRY_SCHEDULE))
    """Seconds to wait after each failed webhook delivery attempt; after the last, the delivery fails."""
    schedule_url_allow_hosts: list[str] = Field(default_factory=list)
    """Schedule input URLs allowed despite a non-public address: hostnames, IPs or CIDRs."""
    schedule_folders: list[Path] = Field(default_factory=list)
    """Folders (and their subfolders) a schedule's file:// input_url may name; none unless set."""

    @cached_property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

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
DEFAULT_SIMULATOR_PORT = 8765  #: where `broker serve` runs the demo provider
#: seconds to wait after each failed webhook delivery attempt (then it fails): now, 5 s, 5 min, 30 min, 2 h ... 24 h
DEFAULT_WEBHOOK_RETRY_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BROKER_", env_file=".env", extra="ignore")

    environment: str = "development"
    database_url: str = Field(
        DEFAULT_DATABASE_URL, validation_alias=AliasChoices("DATABASE_URL", "BROKER_DATABASE_URL")
    )
    redis_url: str | None = Field(None, validation_alias=AliasChoices("REDIS_URL", "BROKER_REDIS_URL"))
    data_dir: Path = Path("data")
    providers_file: Path | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_batch_lines: int = DEFAULT_MAX_BATCH_LINES
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    planner_interval: float = DEFAULT_PLANNER_INTERVAL
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    min_window_seconds: int = 60  #: shortest completion_window accepted
    retry_base_seconds: float = 0.5
    retry_max_seconds: float = 60.0
    worker_threads: int = 32  #: threads taking messages (a message only starts its calls: threads never bound them)
    auth_disabled: bool = False
    #: seconds an interactive call waits for provider capacity before a 429 (a call may ask for less with the
    #: ``x-broker-max-wait`` header)
    interactive_max_wait_seconds: float = 10.0
    simulator_port: int = DEFAULT_SIMULATOR_PORT
    #: webhook targets allowed despite a non-public address: hostnames, IPs or CIDRs (e.g. "127.0.0.1", "10.0.0.0/8")
    webhook_allow_hosts: list[str] = Field(default_factory=list)
    webhook_retry_schedule: list[float] = Field(default_factory=lambda: list(DEFAULT_WEBHOOK_RETRY_SCHEDULE))
    #: schedule input URLs allowed despite a non-public address: hostnames, IPs or CIDRs (as webhook_allow_hosts)
    schedule_url_allow_hosts: list[str] = Field(default_factory=list)
    #: folders (and their subfolders) a schedule's ``file://`` input_url may name; none unless set
    schedule_folders: list[Path] = Field(default_factory=list)

    @cached_property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

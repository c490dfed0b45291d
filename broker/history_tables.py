"""The per-minute provider history table (kept apart from broker/tables.py, which re-exports it)."""

from sqlalchemy import Index
from sqlmodel import Field, SQLModel


class ProviderMinuteRow(SQLModel, table=True):
    """One process' view of one provider in one minute: the last report it published in that minute, kept for the
    last hour only (GET /v1/providers/{id}/history plots it)."""

    __tablename__ = "provider_minute"
    __table_args__ = (Index("ix_provider_minute_minute", "minute"),)

    provider: str = Field(primary_key=True)
    minute: int = Field(primary_key=True)  #: unix time of the minute's start
    worker_id: str = Field(primary_key=True)
    in_flight: int = 0
    calls: int = 0  #: calls in the minute before the report
    rate_limited: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None

"""Dashboard: a per-minute provider history (last hour) and the indexes its pages read through.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("provider_state") as table:
        table.add_column(sa.Column("circuit_open", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "provider_minute",
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("minute", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(), nullable=False),
        sa.Column("in_flight", sa.Integer(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("rate_limited", sa.Integer(), nullable=False),
        sa.Column("p50_ms", sa.Float(), nullable=True),
        sa.Column("p95_ms", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("provider", "minute", "worker_id"),
    )
    op.create_index("ix_provider_minute_minute", "provider_minute", ["minute"])
    op.create_index("ix_batch_project_id_status_id", "batch", ["project_id", "status", "id"])
    op.create_index("ix_line_status_finished_at", "line", ["status", "finished_at", "error_code"])
    op.create_index("ix_usage_daily_day", "usage_daily", ["day"])


def downgrade() -> None:
    op.drop_index("ix_usage_daily_day", table_name="usage_daily")
    op.drop_index("ix_line_status_finished_at", table_name="line")
    op.drop_index("ix_batch_project_id_status_id", table_name="batch")
    op.drop_index("ix_provider_minute_minute", table_name="provider_minute")
    op.drop_table("provider_minute")
    with op.batch_alter_table("provider_state") as table:
        table.drop_column("circuit_open")

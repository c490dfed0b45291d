"""Schedules: cron expressions that create batches.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedule",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("project_id", sa.String(), nullable=False),
        sa.Column("cron", sa.String(), nullable=False),
        sa.Column("timezone", sa.String(), nullable=False),
        sa.Column("input_file_id", sa.String(), nullable=False),
        sa.Column("endpoint", sa.String(), nullable=False),
        sa.Column("completion_window", sa.String(), nullable=False),
        sa.Column("metadata_json", sa.Text(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("priority_label", sa.String(), nullable=False),
        sa.Column("constraints_json", sa.Text(), nullable=True),
        sa.Column("webhook_url", sa.String(), nullable=True),
        sa.Column("max_cost_usd", sa.Float(), nullable=True),
        sa.Column("route", sa.String(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("next_run_at", sa.Integer(), nullable=False),
        sa.Column("last_run_at", sa.Integer(), nullable=True),
        sa.Column("last_batch_id", sa.String(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("schedule") as batch_op:
        batch_op.create_index("ix_schedule_project_id_id", ["project_id", "id"], unique=False)
        batch_op.create_index("ix_schedule_enabled_next_run_at", ["enabled", "next_run_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("schedule") as batch_op:
        batch_op.drop_index("ix_schedule_enabled_next_run_at")
        batch_op.drop_index("ix_schedule_project_id_id")
    op.drop_table("schedule")

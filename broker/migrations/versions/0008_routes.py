"""Routes: native batch submissions, per-batch route plans and eligible deployments, project budgets and
default regions, schedules fed from a URL or folder.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("line") as batch_op:
        batch_op.add_column(sa.Column("remote_batch_id", sa.String(), nullable=True))
    with op.batch_alter_table("batch") as batch_op:
        batch_op.add_column(sa.Column("plan_json", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("eligible_json", sa.Text(), nullable=True))
    with op.batch_alter_table("project") as batch_op:
        batch_op.add_column(sa.Column("monthly_budget_usd", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("regions_json", sa.Text(), nullable=True))
    with op.batch_alter_table("schedule") as batch_op:
        batch_op.add_column(sa.Column("input_url", sa.Text(), nullable=True))
        batch_op.alter_column("input_file_id", existing_type=sa.String(), nullable=True)
    op.create_table(
        "remote_batch",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("batch_id", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("remote_id", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("estimated_cost_usd", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("submitted_at", sa.Float(), nullable=True),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("cancel_after", sa.Float(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("next_poll_at", sa.Float(), nullable=False),
        sa.Column("claimed_until", sa.Float(), nullable=True),
        sa.Column("remote_status", sa.String(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_remote_batch_provider_status_poll", "remote_batch",
                    ["provider", "status", "next_poll_at"])
    op.create_index("ix_remote_batch_batch_id", "remote_batch", ["batch_id"])
    op.create_index("ix_line_remote_batch_id", "line", ["remote_batch_id"])


def downgrade() -> None:
    op.drop_index("ix_line_remote_batch_id", table_name="line")
    op.drop_index("ix_remote_batch_batch_id", table_name="remote_batch")
    op.drop_index("ix_remote_batch_provider_status_poll", table_name="remote_batch")
    op.drop_table("remote_batch")
    with op.batch_alter_table("schedule") as batch_op:
        batch_op.alter_column("input_file_id", existing_type=sa.String(), nullable=False)
        batch_op.drop_column("input_url")
    with op.batch_alter_table("project") as batch_op:
        batch_op.drop_column("regions_json")
        batch_op.drop_column("monthly_budget_usd")
    with op.batch_alter_table("batch") as batch_op:
        batch_op.drop_column("eligible_json")
        batch_op.drop_column("plan_json")
    with op.batch_alter_table("line") as batch_op:
        batch_op.drop_column("remote_batch_id")

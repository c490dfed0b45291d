"""Costs: per line and per batch, and a daily usage roll-up per project, provider, model and route.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("line") as batch_op:
        batch_op.add_column(sa.Column("cost_usd", sa.Float(), nullable=False, server_default="0"))
    with op.batch_alter_table("batch") as batch_op:
        batch_op.add_column(sa.Column("cost_usd", sa.Float(), nullable=False, server_default="0"))
    op.create_table(
        "usage_daily",
        sa.Column("project_id", sa.String(), nullable=False),
        sa.Column("day", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("route", sa.String(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "day", "provider", "model", "route"),
    )


def downgrade() -> None:
    op.drop_table("usage_daily")
    with op.batch_alter_table("batch") as batch_op:
        batch_op.drop_column("cost_usd")
    with op.batch_alter_table("line") as batch_op:
        batch_op.drop_column("cost_usd")

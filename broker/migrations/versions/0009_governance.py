"""Governance: admin and project keys (name, scope, expiry, rotation, budget), project archive and model access,
spend per key, audit log, rate limits per project and model.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("project") as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(), nullable=False, server_default="active"))
        batch_op.add_column(sa.Column("archived_at", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("models_allowed_json", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("models_blocked_json", sa.Text(), nullable=True))
    with op.batch_alter_table("api_key") as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(), nullable=False, server_default="project"))
        batch_op.add_column(sa.Column("name", sa.String(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("scope", sa.String(), nullable=False, server_default="all"))
        batch_op.add_column(sa.Column("suffix", sa.String(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("expires_at", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("previous_hash", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("previous_valid_until", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("monthly_budget_usd", sa.Float(), nullable=True))
        batch_op.alter_column("project_id", existing_type=sa.String(), nullable=True)
        batch_op.create_index("ix_api_key_previous_hash", ["previous_hash"], unique=False)
    with op.batch_alter_table("batch") as batch_op:
        batch_op.add_column(sa.Column("api_key_id", sa.String(), nullable=True))
    op.create_table(
        "project_rate_limit",
        sa.Column("project_id", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("rpm", sa.Integer(), nullable=True),
        sa.Column("tpm", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("project_id", "model"),
    )
    op.create_table(
        "api_key_address",
        sa.Column("api_key_id", sa.String(), nullable=False),
        sa.Column("ip", sa.String(), nullable=False),
        sa.Column("first_seen_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["api_key_id"], ["api_key.id"]),
        sa.PrimaryKeyConstraint("api_key_id", "ip"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("effective_at", sa.Integer(), nullable=False),
        sa.Column("actor_key_id", sa.String(), nullable=True),
        sa.Column("actor_kind", sa.String(), nullable=True),
        sa.Column("ip", sa.String(), nullable=True),
        sa.Column("project_id", sa.String(), nullable=True),
        sa.Column("object_id", sa.String(), nullable=True),
        sa.Column("details_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_log_effective_at", "audit_log", ["effective_at"])
    op.create_table(
        "usage_key_daily",
        sa.Column("api_key_id", sa.String(), nullable=False),
        sa.Column("day", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("project_id", sa.String(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("api_key_id", "day", "model"),
    )


def downgrade() -> None:
    op.drop_table("usage_key_daily")
    op.drop_index("ix_audit_log_effective_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("api_key_address")
    op.drop_table("project_rate_limit")
    with op.batch_alter_table("batch") as batch_op:
        batch_op.drop_column("api_key_id")
    with op.batch_alter_table("api_key") as batch_op:
        batch_op.drop_index("ix_api_key_previous_hash")
        batch_op.alter_column("project_id", existing_type=sa.String(), nullable=False)
        for column in ("monthly_budget_usd", "previous_valid_until", "previous_hash", "last_used_at", "expires_at",
                       "suffix", "scope", "name", "kind"):
            batch_op.drop_column(column)
    with op.batch_alter_table("project") as batch_op:
        for column in ("models_blocked_json", "models_allowed_json", "archived_at", "status"):
            batch_op.drop_column(column)

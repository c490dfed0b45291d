"""Result order: ended lines are numbered per batch so partial result files only grow at the end;
batches are found by their output file.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batch") as batch_op:
        batch_op.add_column(sa.Column("result_seq", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_index("ix_batch_output_file_id", ["output_file_id"], unique=False)
    with op.batch_alter_table("line") as batch_op:
        batch_op.add_column(sa.Column("result_seq", sa.Integer(), nullable=True))
        batch_op.create_index("ix_line_batch_status_seq", ["batch_id", "status", "result_seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("line") as batch_op:
        batch_op.drop_index("ix_line_batch_status_seq")
        batch_op.drop_column("result_seq")
    with op.batch_alter_table("batch") as batch_op:
        batch_op.drop_index("ix_batch_output_file_id")
        batch_op.drop_column("result_seq")

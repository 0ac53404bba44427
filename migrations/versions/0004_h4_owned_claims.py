"""owned claims, crash resend flag, pause reason

Revision ID: 0004_h4
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_h4'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claim', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('resent_after_crash', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.create_index('ix_deliveries_claim', ['claim'], unique=False)
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pause_reason', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.drop_column('pause_reason')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_claim')
        batch_op.drop_column('resent_after_crash')
        batch_op.drop_column('claim')

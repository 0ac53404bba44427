"""owned claims, crash resend flag (the pause reason came with 0005)

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claim', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('resent_after_crash', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.create_index('ix_deliveries_claim', ['claim'], unique=False)


def downgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_claim')
        batch_op.drop_column('resent_after_crash')
        batch_op.drop_column('claim')

"""preference centre: a reader's new address waiting for confirmation

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 21:40:00

The new consent actions and the change-address mail are stored as plain strings
(no native enum), so they need no schema change.
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending_email', sa.String(length=254), nullable=True))


def downgrade():
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_column('pending_email')

"""the ledger records which relay carried each message

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 15:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('deliveries') as batch:
        batch.add_column(sa.Column('relay', sa.String(length=100), nullable=True))


def downgrade():
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_column('relay')

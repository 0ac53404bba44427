"""sequence steps remember the URLs of their tracked links

Revision ID: 0026
Revises: 0023
Create Date: 2026-12-03 17:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0026'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sequence_steps') as batch:
        batch.add_column(sa.Column('tracked_urls', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('sequence_steps') as batch:
        batch.drop_column('tracked_urls')

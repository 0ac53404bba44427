"""sequence steps in readers' languages; a sequence's send window (quiet hours)

Revision ID: 0028
Revises: 0026
Create Date: 2026-12-03 19:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0028'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sequence_steps') as batch:
        batch.add_column(sa.Column('translations', sa.JSON(), nullable=True))
    with op.batch_alter_table('sequences') as batch:
        batch.add_column(sa.Column('window_start', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('window_end', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('sequences') as batch:
        batch.drop_column('window_end')
        batch.drop_column('window_start')
    with op.batch_alter_table('sequence_steps') as batch:
        batch.drop_column('translations')

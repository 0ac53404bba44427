"""import topic notes: a row whose topic slug names no topic is imported, the slug reported

Revision ID: 0024
Revises: 0018
Create Date: 2026-12-03 15:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0024'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('import_jobs') as batch:
        batch.add_column(sa.Column('topic_note_sample', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('topic_note_count', sa.Integer(), nullable=False,
                                   server_default='0'))


def downgrade():
    with op.batch_alter_table('import_jobs') as batch:
        batch.drop_column('topic_note_count')
        batch.drop_column('topic_note_sample')

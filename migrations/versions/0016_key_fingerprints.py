"""key fingerprints: a process with another suppression key than the data's refuses to start

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 12:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'key_fingerprints',
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade():
    op.drop_table('key_fingerprints')

"""digest headline: the mail's H1, separate from its subject

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 21:15:00

NULL (every existing issue) means the default headline: the site name and the
issue's date.
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('headline', sa.String(length=300), nullable=True))


def downgrade():
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.drop_column('headline')

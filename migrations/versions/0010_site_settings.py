"""site settings (branding, mail texts); subscribe requests of a kind ("send me my unsubscribe link")

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 21:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('site_settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('subscribe_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.Enum('subscribe', 'unsubscribe_link', name='request_kind', native_enum=False, length=32), nullable=False, server_default='subscribe'))


def downgrade():
    with op.batch_alter_table('subscribe_requests', schema=None) as batch_op:
        batch_op.drop_column('kind')
    op.drop_table('site_settings')
